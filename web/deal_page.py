"""The read-only deal page: status, who it waits on, approvals, invoices, timeline, as
``dealflow deal status`` shows them. Opened from the links in Prefect's artifacts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from dealflow.infra.clock import utcnow
from dealflow.infra.deal_links import check_deal_page_token
from dealflow.infra.links import LinkError, LinkProblem
from dealflow.infra.rendering import render_in
from dealflow.infra.words import Words
from dealflow.intake.status import DealNotFound, deal_report
from dealflow.reports.tables import stage_title
from models.language import language_code
from models.matrix import load_matrix
from models.settings import get_settings
from web.pages import browser_language
from web.pages import message_page as _message

router = APIRouter()

_NOT_VALID = Words("This link is not valid")
REFUSED = {
    LinkProblem.MALFORMED: (
        Words("This link is incomplete"),
        Words("Copy the whole link again."),
        400,
    ),
    LinkProblem.FORGED: (_NOT_VALID, Words("Open the deal from the Prefect UI again."), 403),
    LinkProblem.WRONG_PURPOSE: (_NOT_VALID, Words("It is not a deal page link."), 403),
    LinkProblem.EXPIRED: (
        Words("This link has expired"),
        Words(
            "Open the deal from its board or the pipeline board in the Prefect UI: they "
            "carry fresh links."
        ),
        410,
    ),
}


@router.get("/deals/{deal_id}", response_class=HTMLResponse)
def deal_page(deal_id: str, request: Request, key: str = "", lang: str = "") -> HTMLResponse:
    """The deal's page in the language ``lang`` names (en, zh_Hans, zh ...), by default
    the deal team's."""
    browser = browser_language(request.headers)
    try:
        check_deal_page_token(deal_id, key, utcnow())
    except LinkError as exc:
        return _message(*REFUSED[exc.problem], language=browser)
    try:
        report = deal_report(deal_id)
    except DealNotFound:
        return _message(
            Words("Deal not found"),
            Words("This deal no longer exists in Dealflow."),
            404,
            language=browser,
        )
    try:
        language = language_code(lang) if lang else None
    except ValueError as exc:
        return _message(Words("Unknown language"), str(exc), 400, language=browser)
    matrix = load_matrix(get_settings().matrix_path)
    if language is None:
        language = matrix.team_language(report["team"])
    html = render_in(
        language,
        "pages/deal.html",
        report=report,
        stage_title=lambda stage: stage_title(matrix, stage, language),
        gate_title=lambda gate: matrix.gate_title(gate, language),
    )
    return HTMLResponse(html)
