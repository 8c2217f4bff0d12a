"""Deal intake over HTTP: a CRM posts a won deal, Dealflow stores it once and starts its run.

The same deal model and the same submit path as ``dealflow deal submit``; a CRM that
retries gets the same deal back. Callers authenticate with a named API key or sign the
request with a shared secret (see dealflow/intake/auth.py for the signature scheme);
web/guard.py checks either before the body is read, and caps the body.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader

from dealflow.infra.db import session_scope
from dealflow.intake.auth import API_KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from dealflow.intake.status import DealNotFound, deal_report
from dealflow.intake.submit import (
    DealConflict,
    IntakeError,
    OrchestratorUnavailable,
    Submission,
    UnknownDeal,
    resubmit,
    staffing_problem,
    submit,
)
from models.deal import DealIntake
from models.deal_receipt import DealReceipt, Problem
from models.matrix import MatrixError, load_matrix
from models.settings import Settings, get_settings
from models.tables import Deal
from web.guard import INTAKE_CLIENT, MAX_DEAL_BYTES

logger = logging.getLogger("dealflow.web.intake")
router = APIRouter(prefix="/api/deals", tags=["deal intake"])

api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="apiKey",
    description="One of the keys in DEALFLOW_INTAKE_API_KEYS.",
    auto_error=False,
)
signature_scheme = APIKeyHeader(
    name=SIGNATURE_HEADER,
    scheme_name="webhookSignature",
    description=(
        f"`sha256=<hex>`: HMAC-SHA256, with a secret from DEALFLOW_INTAKE_WEBHOOK_SECRETS, of "
        f"the {TIMESTAMP_HEADER} value, the method, the path with its query (as on the "
        "request line) and the raw request body, joined by line feeds "
        "(`<timestamp>\\n<METHOD>\\n<path?query>\\n<body>`). Send "
        f"{TIMESTAMP_HEADER} (Unix seconds) too; it must be within "
        "DEALFLOW_INTAKE_SIGNATURE_TOLERANCE_SECONDS (default 300) of the server's clock."
    ),
    auto_error=False,
)

RETRY_AFTER_SECONDS = 30
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No credentials, a wrong key or a bad signature."},
    503: {
        "model": Problem,
        "description": "Intake is not configured on this server, or Dealflow cannot start "
        "deals right now: send the same request again later (repeating it is safe).",
    },
}


async def intake_client(
    request: Request,
    api_key: Annotated[str | None, Security(api_key_scheme)],
    signature: Annotated[str | None, Security(signature_scheme)],
    timestamp: Annotated[
        str | None,
        Header(
            alias=TIMESTAMP_HEADER,
            description="With a signature: when the request was signed, in Unix seconds.",
        ),
    ] = None,
) -> str:
    """The client the request comes from. web/guard.py checked the credentials before
    the body was read (401/503 there); the headers are declared here for the schema."""
    client = request.scope.get("state", {}).get(INTAKE_CLIENT)
    if not isinstance(client, str):
        raise HTTPException(401, "No credentials were checked for this request.")
    return client


Client = Annotated[str, Depends(intake_client)]


def _check_staffing(settings: Settings, deal: DealIntake) -> None:
    """Refuse, before anything is stored, a deal the matrix cannot staff (422) or a
    matrix that cannot be used now (503)."""
    try:
        staffing = staffing_problem(load_matrix(settings.matrix_path), deal)
    except MatrixError as exc:
        raise _cannot_start_now(f"the responsibility matrix cannot be used: {exc}") from None
    if staffing:
        raise _team_problem(staffing, deal)


def _receipt(
    settings: Settings, submission: Submission, response: Response, status: int
) -> DealReceipt:
    """The receipt of a submission: 201 for a new deal or revision, 200 for a retry."""
    status_url = _status_url(settings, submission.deal_id)
    response.status_code = status
    response.headers["Location"] = status_url
    return DealReceipt(
        deal_id=submission.deal_id,
        revision=submission.revision,
        flow_run_id=submission.flow_run_id,
        flow_run_url=submission.flow_run_url,
        status_url=status_url,
    )


def _status_url(settings: Settings, deal_id: str) -> str:
    return f"{settings.public_base_url}/api/deals/{deal_id}"


def _has_run(deal_id: str) -> bool:
    with session_scope() as session:
        deal = session.get(Deal, deal_id)
        return deal is not None and deal.flow_run_id is not None


def _cannot_start_now(reason: str) -> HTTPException:
    logger.error("deal intake cannot start deals: %s", reason)
    return HTTPException(
        503,
        "Dealflow cannot start deals right now. Send the same request again in a minute: "
        "repeating it is safe.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _team_problem(message: str, deal: DealIntake) -> RequestValidationError:
    """The matrix cannot staff the deal's approvals: a problem of its team field."""
    loc = ("body", "team")
    return RequestValidationError(
        [
            {
                "type": "value_error",
                "loc": loc,
                "msg": message.removeprefix("team: "),
                "input": deal.team,
            }
        ]
    )


@router.post(
    "",
    status_code=201,
    summary="Submit a won deal",
    response_description="The deal is new: it is stored and its flow run started.",
    responses={
        200: {"model": DealReceipt, "description": "The same deal again: the same receipt."},
        **AUTH_RESPONSES,
        413: {
            "model": Problem,
            "description": f"The body is over {MAX_DEAL_BYTES:,} bytes: nothing was read further.",
        },
        409: {
            "model": Problem,
            "description": "A deal with this id was submitted before with different content.",
        },
        422: {
            "description": "The deal is not valid: every problem with its field (`loc`).",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
            },
        },
    },
)
def receive_deal(deal: DealIntake, response: Response, client: Client) -> DealReceipt:
    """Store a won deal once and start its flow run, as `dealflow deal submit` does.

    Idempotent on `deal_id`: sending the same deal again (a CRM's retry) answers 200 with
    the same receipt and starts nothing new; different content under the same id is
    refused with 409.
    """
    settings = get_settings()
    _check_staffing(settings, deal)
    started_before = _has_run(deal.deal_id)
    try:
        submission = submit(deal, settings, submitted_via=f"HTTP, {client}")
    except DealConflict as exc:
        raise HTTPException(409, " ".join(exc.problems)) from None
    except IntakeError as exc:  # the matrix changed between the check and the submit
        raise _team_problem(" ".join(exc.problems), deal) from None
    except (OrchestratorUnavailable, MatrixError) as exc:
        raise _cannot_start_now(str(exc)) from None
    logger.info("deal %s received from %s", deal.deal_id, client)
    return _receipt(settings, submission, response, 200 if started_before else 201)


@router.post(
    "/{deal_id}/revisions",
    status_code=201,
    summary="Submit a rejected deal again, revised",
    response_description="The revision is new: it is stored and its own flow run started.",
    responses={
        200: {
            "model": DealReceipt,
            "description": "The same revision again (a retry): the same receipt, no new run.",
        },
        **AUTH_RESPONSES,
        404: {"model": Problem, "description": "No deal with this id was ever submitted."},
        409: {
            "model": Problem,
            "description": "The deal is not rejected, or nothing changed since its rejected "
            "revision: no revision was stored.",
        },
        413: {
            "model": Problem,
            "description": f"The body is over {MAX_DEAL_BYTES:,} bytes: nothing was read further.",
        },
        422: {
            "description": "The deal is not valid, or its `deal_id` is not the one in the path.",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
            },
        },
    },
)
def receive_revision(
    deal_id: str, deal: DealIntake, response: Response, client: Client
) -> DealReceipt:
    """Submit a rejected deal again, changed, as its next revision, as
    `dealflow deal resubmit` does: a new flow run (named `deal-<id>-r2`, ...) plans the
    approval route again, and the approvers are shown what changed.

    Idempotent: the same revision sent again answers 200 with the same receipt and starts
    nothing new. Refused with 409 when the deal is not rejected or the content is
    unchanged, and with 404 when there is no such deal.
    """
    if deal.deal_id != deal_id:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "deal_id"),
                    "msg": f"must be the deal's id in the path, {deal_id}",
                    "input": deal.deal_id,
                }
            ]
        )
    settings = get_settings()
    _check_staffing(settings, deal)
    try:
        submission = resubmit(deal, settings, submitted_via=f"HTTP, {client}")
    except UnknownDeal as exc:
        raise HTTPException(404, " ".join(exc.problems)) from None
    except DealConflict as exc:
        raise HTTPException(409, " ".join(exc.problems)) from None
    except IntakeError as exc:  # the matrix changed between the check and the submit
        raise _team_problem(" ".join(exc.problems), deal) from None
    except (OrchestratorUnavailable, MatrixError) as exc:
        raise _cannot_start_now(str(exc)) from None
    logger.info("deal %s revision %s received from %s", deal_id, submission.revision, client)
    return _receipt(settings, submission, response, 201 if submission.new_deal else 200)


@router.get(
    "/{deal_id}",
    summary="A deal's stage, approvals, invoices and timeline",
    responses={**AUTH_RESPONSES, 404: {"model": Problem, "description": "No such deal."}},
)
def deal_status(deal_id: str, client: Client) -> dict[str, Any]:
    """What `dealflow deal status --json` shows. A signed GET signs its method, path and an empty body."""
    try:
        return deal_report(deal_id)
    except DealNotFound:
        raise HTTPException(404, f"No deal with id {deal_id!r}.") from None
