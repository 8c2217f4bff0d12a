"""Finance's pages: open invoices, recording payments, bank statements, the payment
check (behind HTTP Basic authentication); and the delivery manager's acceptance link.

Each form carries a token of its own, made for the logged-in user and the form's action,
new at every page view and good for two hours, so that another site cannot make a
finance user's browser post to these pages with their remembered credentials, and a
token seen once (a screenshot, a proxy log of a form body) is soon worth nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import inspect
import logging
import secrets
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from sqlalchemy import select

from dealflow.answers.acceptance import (
    AcceptanceError,
    accept_delivery,
    accepted_entry,
    already_accepted,
)
from dealflow.answers.settlement import settle_deal
from dealflow.answers.waiting_run import Outcome, Why
from dealflow.finance.bank_statement import StatementError, import_lines, parse_statement
from dealflow.finance.payments import PaymentDetails, PaymentError, parse_amount, record_payment
from dealflow.finance.receivables import (
    ReceivableError,
    active_holds,
    clear_hold,
    dispute_invoice,
    open_invoices,
    resolve_dispute,
)
from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.links import LinkError, LinkProblem, Purpose, link_keys, verify
from dealflow.infra.records import DealNotFound, get_deal, intake_of
from dealflow.infra.rendering import render
from models.finance import DeliveryAcceptance
from models.keys import ACCEPTANCE_WAIT
from models.settings import get_settings
from models.tables import Invoice
from web.guard import FINANCE_REALM, FINANCE_USER, MAX_STATEMENT_BYTES

logger = logging.getLogger("dealflow.web.finance")
router = APIRouter()
basic = HTTPBasic(realm="Dealflow finance")


def finance_user(
    request: Request, credentials: Annotated[HTTPBasicCredentials, Depends(basic)]
) -> str:
    """The logged-in finance user. web/guard.py checked the password before the body was
    read (401 there); the scheme is declared here for the schema."""
    user = request.scope.get("state", {}).get(FINANCE_USER)
    if user is None or user != credentials.username:
        raise HTTPException(
            401, "Finance login required.", headers={"WWW-Authenticate": FINANCE_REALM}
        )
    return str(user)


# A finance page's forms work this long after the page was shown; then the page must be
# opened again (a form kept open in a forgotten tab is not a standing permission).
FORM_TOKEN_SECONDS = 2 * 3600
_FORM_KEY_PURPOSE = b"dealflow finance form"


def _form_mac(user: str, action: str, issued: str, nonce: str) -> str:
    key = hmac.new(get_settings().signing_key(), _FORM_KEY_PURPOSE, hashlib.sha256).digest()
    message = f"{user}\n{action}\n{issued}\n{nonce}".encode()
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def form_token(user: str, action: str, now: dt.datetime | None = None) -> str:
    """The anti-forgery token of one form (``action``, the path it posts to), for
    ``user``, issued ``now``: ``<issued>.<nonce>.<HMAC>``, new at every page view."""
    issued = str(int((now or utcnow()).timestamp()))
    nonce = secrets.token_urlsafe(12)
    return f"{issued}.{nonce}.{_form_mac(user, action, issued, nonce)}"


class StaleForm(Exception):
    """A finance form post without a live token of its page: nothing is done."""


def _check_form(user: str, action: str, token: str, now: dt.datetime | None = None) -> None:
    """StaleForm unless ``token`` was issued to ``user`` for the form posting to
    ``action``, less than FORM_TOKEN_SECONDS ago."""
    issued, _, rest = token.partition(".")
    nonce, _, mac = rest.partition(".")
    if not (issued.isascii() and issued.isdigit() and nonce and mac):
        raise StaleForm
    expected = _form_mac(user, action, issued, nonce)
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        raise StaleForm
    age = (now or utcnow()).timestamp() - int(issued)
    if not -60 <= age < FORM_TOKEN_SECONDS:  # a minute of clock skew between processes
        raise StaleForm


def _message(title: str, message: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(render("pages/message.html", title=title, message=message), status)


def _finance_page(user: str, notice: str = "", error: str = "", status: int = 200) -> HTMLResponse:
    invoices, total = open_invoices(200)
    html = render(
        "pages/finance.html",
        user=user,
        token=lambda action: form_token(user, action),
        invoices=invoices,
        total=total,
        holds=active_holds(),
        notice=notice,
        error=error,
        today=utcnow().date(),
    )
    return HTMLResponse(html, status)


User = Annotated[str, Depends(finance_user)]
Token = Annotated[str, Form(alias="form_token")]


@router.get("/finance", response_class=HTMLResponse)
def finance_home(user: User) -> HTMLResponse:
    return _finance_page(user)


@router.post("/finance/payments", response_class=HTMLResponse)
def finance_record_payment(
    user: User,
    token: Token,
    invoice: Annotated[str, Form(max_length=80)],
    amount: Annotated[str, Form(max_length=20)],
    received_on: Annotated[str, Form(max_length=10)] = "",
    reference: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    _check_form(user, "/finance/payments", token)
    try:
        value = parse_amount(amount)
        day = dt.date.fromisoformat(received_on) if received_on else utcnow().date()
    except (PaymentError, ValueError) as exc:
        return _finance_page(
            user,
            error=f"Nothing was recorded: {exc} (dates as 2026-11-30; got {received_on!r}).",
            status=400,
        )
    if day > utcnow().date() + dt.timedelta(days=1):
        return _finance_page(
            user, error=f"Nothing was recorded: {day} is in the future.", status=400
        )
    details = PaymentDetails(invoice.strip().upper(), value, day, reference.strip())
    try:
        result = record_payment(details, source="web", recorded_by=user)
    except PaymentError as exc:
        return _finance_page(user, error=f"Nothing was recorded: {exc}", status=400)
    notice = f"Recorded: {result.describe()}"
    if result.deal_settled:
        notice += f". {settle_deal(result.deal_id)}"
    return _finance_page(user, notice=notice)


@router.post("/finance/statements", response_class=HTMLResponse)
def finance_import_statement(
    user: User, token: Token, statement: Annotated[UploadFile, File()]
) -> HTMLResponse:
    # A plain function: FastAPI runs it in a worker thread, so a long import does not
    # hold up the pages other people are opening.
    _check_form(user, "/finance/statements", token)
    data = statement.file.read(MAX_STATEMENT_BYTES + 1)
    name = statement.filename or "statement.csv"
    if len(data) > MAX_STATEMENT_BYTES:
        return _finance_page(user, error="Nothing was imported: the file is over 5 MB.", status=400)
    try:
        lines = parse_statement(data.decode("utf-8-sig"), name)
    except UnicodeDecodeError:
        return _finance_page(
            user, error="Nothing was imported: the file is not UTF-8 text.", status=400
        )
    except StatementError as exc:
        return _finance_page(
            user, error="Nothing was imported: " + "; ".join(exc.problems), status=400
        )
    report = import_lines(lines, source=name[:40], recorded_by=user)
    closing = [settle_deal(deal_id) for deal_id in report.settled_deals]
    return _finance_page(user, notice="\n".join([report.summary(), *closing]))


@router.post("/finance/check", response_class=HTMLResponse)
def finance_run_check(user: User, token: Token) -> HTMLResponse:
    """Start the payment-check deployment now; the run appears in the Prefect UI."""
    _check_form(user, "/finance/check", token)
    from prefect.deployments import run_deployment

    try:
        run = run_deployment("payment-check/payment-check", timeout=0, tags=["on-demand"])
    except (httpx.HTTPError, PrefectHTTPStatusError, ObjectNotFound) as exc:
        logger.warning("the payment check could not be started: %s", exc)
        return _finance_page(
            user,
            error="The payment check could not be started: the workflow server is not "
            "reachable or has no payment-check deployment. Try again in a minute.",
            status=503,
        )
    assert not inspect.isawaitable(run)
    ui = get_settings().prefect_ui_url
    return _finance_page(
        user, notice=f"Payment check started: {ui}/runs/flow-run/{run.id} (started by {user})"
    )


@router.post("/finance/invoices/{number}/dispute", response_class=HTMLResponse)
def finance_dispute(
    user: User, token: Token, number: str, reason: Annotated[str, Form(max_length=2000)] = ""
) -> HTMLResponse:
    _check_form(user, f"/finance/invoices/{number}/dispute", token)
    try:
        return _finance_page(user, notice=dispute_invoice(number, reason, user))
    except ReceivableError as exc:
        return _finance_page(user, error=f"Nothing was changed: {exc}", status=400)


@router.post("/finance/invoices/{number}/resolve", response_class=HTMLResponse)
def finance_resolve(user: User, token: Token, number: str) -> HTMLResponse:
    _check_form(user, f"/finance/invoices/{number}/resolve", token)
    try:
        return _finance_page(user, notice=resolve_dispute(number, user))
    except ReceivableError as exc:
        return _finance_page(user, error=f"Nothing was changed: {exc}", status=400)


@router.post("/finance/holds/clear", response_class=HTMLResponse)
def finance_clear_hold(
    user: User, token: Token, customer: Annotated[str, Form(max_length=200)]
) -> HTMLResponse:
    _check_form(user, "/finance/holds/clear", token)
    try:
        return _finance_page(user, notice=clear_hold(customer, user))
    except ReceivableError as exc:
        return _finance_page(user, error=f"Nothing was changed: {exc}", status=400)


def _acceptance_claim(token: str) -> tuple[str, str, str] | HTMLResponse:
    try:
        claim = verify(token, link_keys(), utcnow(), Purpose.ACCEPTANCE)
    except LinkError as exc:
        if exc.problem is LinkProblem.WRONG_PURPOSE:
            return _message("This link is not valid", "It is not an acceptance link.", 403)
        renew = ""
        if exc.problem is LinkProblem.EXPIRED and exc.claim is not None:
            renew = (
                " Operations can mail a fresh link with `dealflow deal renew-acceptance-link "
                f"{exc.claim.deal_id}`."
            )
        return _message(
            "This link cannot be used",
            f"It is {exc.problem.value}. Open the link from your email again, or record the "
            f"acceptance with `dealflow deal accept`.{renew}",
            410 if exc.problem is LinkProblem.EXPIRED else 403,
        )
    if claim.gate != ACCEPTANCE_WAIT:
        return _message("This link is not valid", "It is not an acceptance link.", 403)
    return claim.deal_id, claim.approver, claim.run_id


@router.get("/acceptance/{token}", response_class=HTMLResponse)
def show_acceptance(token: str) -> HTMLResponse:
    """The acceptance page; opening it changes nothing (mail scanners open links)."""
    claim = _acceptance_claim(token)
    if isinstance(claim, HTMLResponse):
        return claim
    deal_id, manager, _run = claim
    try:
        done = accepted_entry(deal_id)
        with session_scope() as session:
            deal = get_deal(session, deal_id)
            invoices = session.scalars(
                select(Invoice).where(Invoice.deal_id == deal_id).order_by(Invoice.sequence)
            ).all()
            html = render(
                "pages/acceptance.html",
                deal=intake_of(deal),
                stage=deal.stage,
                invoices=invoices,
                manager=manager,
                done=done,
                today=utcnow().date(),
            )
    except DealNotFound:
        return _message("Deal not found", "This deal no longer exists in Dealflow.", 404)
    return HTMLResponse(html)


@router.post("/acceptance/{token}", response_class=HTMLResponse)
def post_acceptance(
    token: str,
    accepted_on: Annotated[str, Form(max_length=10)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> HTMLResponse:
    claim = _acceptance_claim(token)
    if isinstance(claim, HTMLResponse):
        return claim
    deal_id, manager, run_id = claim
    try:
        day = dt.date.fromisoformat(accepted_on) if accepted_on else None
    except ValueError:
        return _message("Not a date", f"Give the date as YYYY-MM-DD (got {accepted_on!r}).", 400)
    try:
        answered = accept_delivery(
            deal_id, by=manager, accepted_on=day, note=note.strip(), run_id=run_id
        )
    except DealNotFound:
        return _message("Deal not found", "This deal no longer exists in Dealflow.", 404)
    except AcceptanceError as exc:
        return _message("Acceptance not recorded", str(exc), 409)
    accepted = answered.answer
    if isinstance(accepted, DeliveryAcceptance):
        return _message(
            "Acceptance recorded",
            f"Thank you: acceptance of {deal_id} on {accepted.accepted_on} is recorded; the "
            "invoices due on acceptance go out now.",
        )
    return _not_accepted(deal_id, answered)


def _not_accepted(deal_id: str, answered: Outcome) -> HTMLResponse:
    """The acceptance page for each outcome but RESUMED; Prefect's words go to the log."""
    if answered.earlier is not None:
        return _message("Acceptance not recorded", already_accepted(deal_id, answered.earlier), 409)
    try_again = "Please try again"
    match answered.why:
        case Why.ON_ITS_WAY:
            return _message(
                try_again,
                f"Deal {deal_id} is not waiting for acceptance yet (it is at "
                f"{answered.stage}). Nothing was recorded; try again in a minute.",
                503,
            )
        case Why.CRASHED | Why.RESTARTING:
            return _message(
                try_again,
                "This deal's workflow is being restarted. Nothing was recorded; try again in "
                "a few minutes.",
                503,
            )
        case Why.UNREACHABLE:
            return _message(
                try_again,
                "Dealflow cannot reach its workflow server right now. Nothing was recorded; "
                "try again in a minute.",
                503,
            )
        case Why.REFUSED:
            words = "The workflow server did not accept it. Nothing was recorded; operations can tell you why."
        case Why.NO_RUN | Why.OTHER_RUN:
            words = f"This link does not belong to the current run of {deal_id}."
        case Why.RUN_GONE:
            words = (
                "This deal's workflow run no longer exists. Nothing was recorded; ask operations."
            )
        case _:
            words = f"Deal {deal_id} is not waiting for acceptance (it is at {answered.stage})."
    return _message("Acceptance not recorded", words, 409)
