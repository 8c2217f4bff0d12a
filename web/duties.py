"""The sales rep's duty pages, opened from the links in their emails: the weekly progress
report while delivery runs (``deal progress``) and the repurchase conversation once the
deal is paid (``deal repurchase``). Showing a page changes nothing (mail scanners open
links); posting it records the duty once, through the same function as the command. No
run waits for either: only the link checks are shared with the waiting steps' pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from dealflow.answers.repurchase import (
    MAX_NOTE as MAX_REPURCHASE_NOTE,
)
from dealflow.answers.repurchase import (
    RepurchaseError,
    already_recorded,
    record_repurchase,
    repurchase_entry,
)
from dealflow.infra.db import session_scope
from dealflow.infra.deal_links import deal_page_url
from dealflow.infra.links import Purpose
from dealflow.infra.records import DealNotFound, get_deal, intake_of
from dealflow.infra.rendering import render_in
from dealflow.infra.words import Words
from dealflow.reports.tables import stage_title
from models import keys
from models.matrix import load_matrix
from models.settings import get_settings
from tasks.delivery_progress import MAX_NOTE, ProgressError, progress_week, record_progress
from web.pages import message_page
from web.step_links import DEAL_GONE, LinkPage, StepClaim, claim_of

router = APIRouter()

PROGRESS_PAGE = LinkPage(
    purpose=Purpose.PROGRESS,
    step=keys.PROGRESS_STEP,
    not_this_kind=Words("It is not a progress report link."),
    record_otherwise=Words("Record the progress report with `dealflow deal progress`."),
    not_recorded=Words("Progress report not recorded"),
)
REPURCHASE_PAGE = LinkPage(
    purpose=Purpose.REPURCHASE,
    step=keys.REPURCHASE_STEP,
    not_this_kind=Words("It is not a repurchase conversation link."),
    record_otherwise=Words("Record the repurchase conversation with `dealflow deal repurchase`."),
    not_recorded=Words("Repurchase conversation not recorded"),
)


def nothing_recorded(page: LinkPage, why: Words | str, language: str) -> HTMLResponse:
    said = Words("Nothing was recorded: %(why)s.", why=why)
    return message_page(page.not_recorded, said, 409, language=language)


def _posted(
    page: LinkPage, token: str, request: Request, note: str, empty: Words
) -> StepClaim | HTMLResponse:
    """The link's claim for a posted note, or the page saying why nothing is recorded:
    the link cannot be used, or the note is empty (``empty`` says what to write)."""
    claim = claim_of(page, token, request)
    if isinstance(claim, HTMLResponse):
        return claim
    if not note.strip():
        return message_page(page.not_recorded, empty, 400, language=claim.language)
    return claim


def _page(claim: StepClaim, template: str, **values: object) -> HTMLResponse:
    """The duty's page: the deal, its stage and the form (``values``)."""
    with session_scope() as session:
        deal = get_deal(session, claim.deal_id)
        matrix = load_matrix(get_settings().matrix_path)
        html = render_in(
            claim.language,
            template,
            deal=intake_of(deal),
            stage=stage_title(matrix, deal.stage, claim.language),
            rep=claim.person,
            **values,
        )
    return HTMLResponse(html)


@router.get("/progress/{token}", response_class=HTMLResponse)
def show_progress(token: str, request: Request) -> HTMLResponse:
    """The week's progress report form; opening it changes nothing."""
    claim = claim_of(PROGRESS_PAGE, token, request)
    if isinstance(claim, HTMLResponse):
        return claim
    try:
        running = progress_week(claim.deal_id)
        return _page(
            claim,
            "pages/progress.html",
            week=running.week,
            done=running.recorded,
            max_note=MAX_NOTE,
        )
    except DealNotFound:
        return message_page(*DEAL_GONE, language=claim.language)
    except ProgressError as exc:
        return nothing_recorded(PROGRESS_PAGE, exc.said, claim.language)


@router.post("/progress/{token}", response_class=HTMLResponse)
def post_progress(
    token: str,
    request: Request,
    note: Annotated[str, Form(max_length=MAX_NOTE)] = "",
    to_customer: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    """Record the week's report once, as ``deal progress`` does; again, it says so (409)."""
    empty = Words("Write the progress note: what was done this week and what comes next.")
    claim = _posted(PROGRESS_PAGE, token, request, note, empty)
    if isinstance(claim, HTMLResponse):
        return claim
    deal_id, language = claim.deal_id, claim.language
    try:
        done = record_progress(deal_id, note, claim.person, to_customer=to_customer)
    except DealNotFound:
        return message_page(*DEAL_GONE, language=language)
    except ProgressError as exc:
        return nothing_recorded(PROGRESS_PAGE, exc.said, language)
    said = [
        Words(
            "Thank you: the progress report of %(deal_id)s for delivery week %(week)s is recorded.",
            deal_id=deal_id,
            week=done.week,
        )
    ]
    if done.sent_to:
        said.append(Words("It is emailed to %(contact)s.", contact=done.sent_to))
    return message_page(
        Words("Progress report recorded"), said, language=language, deal_page=deal_page_url(deal_id)
    )


@router.get("/repurchase/{token}", response_class=HTMLResponse)
def show_repurchase(token: str, request: Request) -> HTMLResponse:
    """The repurchase conversation's form; opening it changes nothing."""
    claim = claim_of(REPURCHASE_PAGE, token, request)
    if isinstance(claim, HTMLResponse):
        return claim
    try:
        return _page(
            claim,
            "pages/repurchase.html",
            done=repurchase_entry(claim.deal_id),
            max_note=MAX_REPURCHASE_NOTE,
        )
    except DealNotFound:
        return message_page(*DEAL_GONE, language=claim.language)


@router.post("/repurchase/{token}", response_class=HTMLResponse)
def post_repurchase(
    token: str,
    request: Request,
    note: Annotated[str, Form(max_length=MAX_REPURCHASE_NOTE)] = "",
) -> HTMLResponse:
    """Record the conversation once, as ``deal repurchase`` does; again, it says so (409)."""
    empty = Words("Write how the conversation went: what the customer needs next.")
    claim = _posted(REPURCHASE_PAGE, token, request, note, empty)
    if isinstance(claim, HTMLResponse):
        return claim
    deal_id, language = claim.deal_id, claim.language
    try:
        done = record_repurchase(deal_id, note, claim.person)
    except DealNotFound:
        return message_page(*DEAL_GONE, language=language)
    except RepurchaseError as exc:
        return nothing_recorded(REPURCHASE_PAGE, exc.said, language)
    if not done.new:
        said = already_recorded(deal_id, done)
        return message_page(REPURCHASE_PAGE.not_recorded, said, 409, language=language)
    return message_page(
        Words("Repurchase conversation recorded"),
        Words(
            "Thank you: the repurchase conversation of %(deal_id)s is recorded.", deal_id=deal_id
        ),
        language=language,
        deal_page=deal_page_url(deal_id),
    )
