"""The approval web service: approvers open a link, read the deal, and decide.

GET never changes anything (mail scanners open links before people do); only the POST
from the page's buttons records a decision.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.exc import OperationalError

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.links import LinkClaim, LinkError, LinkProblem, Purpose, link_keys, verify
from dealflow.infra.records import (
    DealNotFound,
    approvals,
    changes_for_gate,
    get_approval,
    get_deal,
    intake_of,
)
from dealflow.infra.rendering import N_, render_in, translate
from dealflow.infra.words import Words
from dealflow.reports.tables import stage_title
from models.matrix import MatrixError, load_matrix
from models.settings import get_settings
from web.deal_page import router as deal_page_router
from web.decisions import Outcome, Verdict, check_claim, decide
from web.guard import RequestGuard
from web.headers import SecurityHeaders
from web.intake_api import router as intake_router
from web.pages import browser_language, reader_language
from web.pages import message_page as page
from web.stored_text import refuse_nul_characters

logger = logging.getLogger("dealflow.web")
# The API's schema and its documentation pages only where DEALFLOW_API_DOCS allows:
# they tell an outsider every route and field.
_docs = get_settings().api_docs
app = FastAPI(
    title="Dealflow",
    summary="Deal approvals by signed link.",
    openapi_url="/openapi.json" if _docs else None,
    docs_url="/api/docs" if _docs else None,
    redoc_url="/redoc" if _docs else None,
    dependencies=[Depends(refuse_nul_characters)],
)
app.include_router(intake_router)
app.include_router(deal_page_router)
# The gate (credentials before bodies, limits), inside the headers: its own answers
# (401, 413, 429) carry them too.
app.add_middleware(RequestGuard)
app.add_middleware(SecurityHeaders)


STATUS = {
    Verdict.DECIDED: 200,
    Verdict.ALREADY_DECIDED: 409,
    Verdict.REFUSED: 403,
    Verdict.NOT_WAITING: 409,
    Verdict.TRY_AGAIN: 503,
}
NOT_VALID = Words("This link is not valid")
LINK_PAGES = {
    LinkProblem.MALFORMED: (
        400,
        Words("This link is incomplete"),
        Words("Copy the whole link from the email, or open it from the email again."),
    ),
    LinkProblem.FORGED: (
        403,
        NOT_VALID,
        Words(
            "It was not issued by Dealflow or it was changed. Open the link from your email again."
        ),
    ),
    LinkProblem.EXPIRED: (
        410,
        Words("This link has expired"),
        Words("Ask the deal's sales rep or sales operations to send a new request."),
    ),
    LinkProblem.WRONG_PURPOSE: (403, NOT_VALID, Words("It is not an approval link.")),
}
DEAL_GONE = (Words("Deal not found"), Words("This deal no longer exists in Dealflow."), 404)


def _claim(token: str, request: Request) -> LinkClaim | HTMLResponse:
    try:
        claim = verify(token, link_keys(), utcnow(), Purpose.APPROVAL)
    except LinkError as exc:
        status, title, message = LINK_PAGES[exc.problem]
        said: list[Words] = [message]
        language = browser_language(request.headers)
        if exc.claim is not None and exc.claim.expires <= utcnow():
            # Signed by Dealflow, only too old: it names its reader.
            language = reader_language(exc.claim, request.headers)
            said.insert(0, Words("It expired on %(at)s.", at=exc.claim.expires))
        return page(title, said, status, language=language)
    return claim


def _approval_page(claim: LinkClaim, error: str = "", status: int = 200) -> HTMLResponse:
    matrix = load_matrix(get_settings().matrix_path)
    with session_scope() as session:
        deal = get_deal(session, claim.deal_id)
        row = get_approval(session, claim.deal_id, claim.gate)
        history = approvals(session, claim.deal_id)
        revised = changes_for_gate(session, deal, claim.gate)
    # The page speaks the language of the approver the link was issued to.
    language = matrix.language_of(claim.approver, deal.team)
    if row is None:
        return page(NOT_VALID, Words("It names no gate of this deal."), 403, language=language)
    blocked = check_claim(claim)
    html = render_in(
        language,
        "pages/approval.html",
        deal=intake_of(deal),
        stage=stage_title(matrix, deal.stage, language),
        gate_title=matrix.gate_title(claim.gate, language),
        title_of=lambda gate: matrix.gate_title(gate, language),
        approval=row,
        history=history,
        revised=revised,
        blocked=blocked.message_in(language) if blocked else "",
        verdict=blocked.verdict.value if blocked else "",
        error=translate(language, error) if error else "",
    )
    return HTMLResponse(html, status)


@app.exception_handler(MatrixError)
def matrix_problem(request: Request, exc: MatrixError) -> HTMLResponse:
    logger.error("the responsibility matrix cannot be used: %s", exc)
    return page(
        Words("Dealflow cannot show this right now"),
        Words(
            "Its responsibility matrix has a problem that operations must fix. Nothing was "
            "recorded; try again later."
        ),
        503,
        language=browser_language(request.headers),
    )


@app.get("/approvals/{token}", response_class=HTMLResponse)
def show_approval(token: str, request: Request) -> HTMLResponse:
    claim = _claim(token, request)
    if isinstance(claim, HTMLResponse):
        return claim
    try:
        return _approval_page(claim)
    except DealNotFound:
        return page(*DEAL_GONE, language=browser_language(request.headers))


TITLES = {
    Verdict.DECIDED: Words("Decision recorded"),
    Verdict.ALREADY_DECIDED: Words("Already decided"),
    Verdict.REFUSED: Words("You cannot decide this gate"),
    Verdict.NOT_WAITING: Words("Nothing to decide"),
    Verdict.TRY_AGAIN: Words("Please try again"),
}


@app.post("/approvals/{token}", response_class=HTMLResponse)
def post_decision(
    token: str,
    request: Request,
    decision: Annotated[str, Form()],
    comment: Annotated[str, Form(max_length=4000)] = "",
) -> HTMLResponse:
    claim = _claim(token, request)
    if isinstance(claim, HTMLResponse):
        return claim
    language = reader_language(claim, request.headers)
    if decision not in {"approve", "reject"}:
        return page(
            Words("Unknown decision"),
            Words("Use the Approve or Reject button on the page."),
            400,
            language=language,
        )
    comment = comment.strip()
    try:
        if decision == "reject" and not comment:
            return _approval_page(
                claim,
                error=N_("Say why you reject the deal: the sales rep will read it."),
                status=400,
            )
        outcome: Outcome = decide(claim, decision == "approve", comment, get_settings())
    except DealNotFound:
        return page(*DEAL_GONE, language=language)
    return page(
        TITLES[outcome.verdict],
        outcome.said,
        STATUS[outcome.verdict],
        language=language,
        verdict=outcome.verdict.value,
        deal_page=outcome.deal_page,
    )


@app.get("/healthz")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    return page(
        "Dealflow",
        Words("Approvals open from the links in Dealflow's emails."),
        language=browser_language(request.headers),
    )


# Finance, acceptance, signing, survey and the rep's duty pages; imported last, as they use nothing of this module.
from web.acceptance import router as acceptance_router  # noqa: E402
from web.duties import router as duties_router  # noqa: E402
from web.finance import router as finance_router  # noqa: E402
from web.form_tokens import StaleForm  # noqa: E402
from web.signing import router as signing_router  # noqa: E402
from web.survey import router as survey_router  # noqa: E402

app.include_router(finance_router)
app.include_router(acceptance_router)
app.include_router(signing_router)
app.include_router(survey_router)
app.include_router(duties_router)


@app.exception_handler(StaleForm)
def stale_form(request: Request, _exc: StaleForm) -> HTMLResponse:
    return page(
        Words("This form has expired"),
        Words(
            "It was not sent from the current finance page. Nothing was done: open the "
            "finance page again and repeat."
        ),
        403,
        language=browser_language(request.headers),
    )


@app.exception_handler(OperationalError)
def database_unavailable(request: Request, exc: OperationalError) -> HTMLResponse:
    logger.warning("the database did not answer: %s", type(exc.orig).__name__)
    return page(
        Words("Please try again"),
        Words(
            "Dealflow's database is busy or unreachable right now. Nothing was recorded; try "
            "again in a minute."
        ),
        503,
        language=browser_language(request.headers),
    )
