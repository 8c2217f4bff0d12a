"""The read-only deal page: status, who it waits on, approvals, invoices, timeline, as
``dealflow deal status`` shows them. Opened from the links in Prefect's artifacts."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from dealflow.infra.clock import utcnow
from dealflow.infra.deal_links import check_deal_page_token
from dealflow.infra.links import LinkError, LinkProblem
from dealflow.infra.rendering import render_in
from dealflow.intake.status import DealNotFound, deal_report
from models.language import language_code
from models.matrix import load_matrix
from models.settings import get_settings
from web.pages import message_page as _message

router = APIRouter()

REFUSED = {
    LinkProblem.MALFORMED: (400, "This link is incomplete", "Copy the whole link again."),
    LinkProblem.FORGED: (403, "This link is not valid", "Open the deal from the Prefect UI again."),
    LinkProblem.WRONG_PURPOSE: (403, "This link is not valid", "It is not a deal page link."),
    LinkProblem.EXPIRED: (
        410,
        "This link has expired",
        "Open the deal from its board or the pipeline board in the Prefect UI: they carry fresh links.",
    ),
}


@router.get("/deals/{deal_id}", response_class=HTMLResponse)
def deal_page(deal_id: str, key: str = "", lang: str = "") -> HTMLResponse:
    """The deal's page in the language ``lang`` names (en, zh_Hans, zh ...), by default
    the deal team's."""
    try:
        check_deal_page_token(deal_id, key, utcnow())
    except LinkError as exc:
        status, title, message = REFUSED[exc.problem]
        return _message(title, message, status)
    try:
        report = deal_report(deal_id)
    except DealNotFound:
        return _message("Deal not found", "This deal no longer exists in Dealflow.", 404)
    try:
        language = language_code(lang) if lang else None
    except ValueError as exc:
        return _message("Unknown language", str(exc), 400)
    if language is None:
        language = load_matrix(get_settings().matrix_path).team_language(report["team"])
    return HTMLResponse(render_in(language, "pages/deal.html", report=report))
