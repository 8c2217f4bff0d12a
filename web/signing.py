"""The sales rep's signing page, opened from the link in their email: showing it changes
nothing (mail scanners open links); posting it records the contract signed by the customer
once and resumes the deal's run, which then kicks off delivery and sends the invoices due."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from dealflow.answers.signing import (
    MAX_DOCUMENT,
    MAX_SIGNER,
    SigningError,
    already_signed,
    last_approval_day,
    record_signature,
    signed_entry,
)
from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.deal_links import deal_page_url
from dealflow.infra.links import Purpose
from dealflow.infra.records import DealNotFound, get_deal, intake_of
from dealflow.infra.rendering import render_in
from dealflow.infra.words import Words
from dealflow.reports.tables import stage_title
from models.keys import SIGNING_WAIT
from models.matrix import load_matrix
from models.settings import get_settings
from models.signing import ContractSigned
from tasks.signing import due_at_handoff
from web.pages import message_page as _message
from web.step_links import DEAL_GONE, StepPage, claim_of, form_date, not_answered

router = APIRouter()

SIGNING_PAGE = StepPage(
    purpose=Purpose.SIGNING,
    step=SIGNING_WAIT,
    not_this_kind=Words("It is not a signing link."),
    record_otherwise=Words(
        "Open the link from your email again, or record the signed contract "
        "with `dealflow deal sign`."
    ),
    not_recorded=Words("Signed contract not recorded"),
    already=already_signed,
    not_yet=lambda deal_id, stage: Words(
        "Deal %(deal_id)s is not waiting for the signed contract yet (it is at "
        "%(stage)s). Nothing was recorded; try again in a minute.",
        deal_id=deal_id,
        stage=stage,
    ),
    not_waiting=lambda deal_id, stage: Words(
        "Deal %(deal_id)s is not waiting for the signed contract (it is at %(stage)s).",
        deal_id=deal_id,
        stage=stage,
    ),
)


@router.get("/signing/{token}", response_class=HTMLResponse)
def show_signing(token: str, request: Request) -> HTMLResponse:
    """The signing page; opening it changes nothing (mail scanners open links)."""
    claim = claim_of(SIGNING_PAGE, token, request)
    if isinstance(claim, HTMLResponse):
        return claim
    deal_id, rep, language = claim.deal_id, claim.person, claim.language
    try:
        done = signed_entry(deal_id)
        with session_scope() as session:
            deal = get_deal(session, deal_id)
            intake = intake_of(deal)
            matrix = load_matrix(get_settings().matrix_path)
            zone = matrix.calendar(deal.team).zone
            html = render_in(
                language,
                "pages/signing.html",
                deal=intake,
                stage=stage_title(matrix, deal.stage, language),
                due_now=due_at_handoff(intake),
                rep=rep,
                done=done,
                max_signer=MAX_SIGNER,
                max_document=MAX_DOCUMENT,
                # The team's dates, as the signing date is judged.
                today=utcnow().astimezone(zone).date(),
                approved=last_approval_day(session, deal, zone),
            )
    except DealNotFound:
        return _message(*DEAL_GONE, language=language)
    return HTMLResponse(html)


@router.post("/signing/{token}", response_class=HTMLResponse)
def post_signing(
    token: str,
    request: Request,
    signed_by: Annotated[str, Form(max_length=MAX_SIGNER)] = "",
    signed_on: Annotated[str, Form(max_length=10)] = "",
    document: Annotated[str, Form(max_length=MAX_DOCUMENT)] = "",
) -> HTMLResponse:
    claim = claim_of(SIGNING_PAGE, token, request)
    if isinstance(claim, HTMLResponse):
        return claim
    deal_id, language = claim.deal_id, claim.language
    day = form_date(signed_on, language)
    if isinstance(day, HTMLResponse):
        return day
    try:
        answered = record_signature(
            deal_id,
            signed_by=signed_by,
            document=document,
            signed_on=day,
            by=claim.person,
            run_id=claim.run_id,
        )
    except DealNotFound:
        return _message(*DEAL_GONE, language=language)
    except SigningError as exc:
        return _message(SIGNING_PAGE.not_recorded, exc.said, 409, language=language)
    signed = answered.answer
    if isinstance(signed, ContractSigned):
        return _message(
            Words("Signed contract recorded"),
            [
                Words(
                    "Thank you: the contract of %(deal_id)s signed by %(signer)s on %(day)s "
                    "is recorded.",
                    deal_id=deal_id,
                    signer=signed.signed_by,
                    day=signed.signed_on,
                ),
                Words(
                    "Delivery is kicked off now, and the invoices due at signing and kickoff "
                    "go to the customer."
                ),
            ],
            language=language,
            deal_page=deal_page_url(deal_id),
        )
    return not_answered(SIGNING_PAGE, deal_id, answered, language)
