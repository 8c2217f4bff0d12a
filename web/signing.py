"""The sales rep's signing page, opened from the link in their email: showing it changes
nothing (mail scanners open links); posting it records the contract signed by the customer
once and resumes the deal's run, which then kicks off delivery and sends the invoices due."""

from __future__ import annotations

import datetime as dt
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
from dealflow.answers.waiting_run import Outcome, Why
from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.deal_links import deal_page_url
from dealflow.infra.links import LinkError, LinkProblem, Purpose, link_keys, verify
from dealflow.infra.records import DealNotFound, get_deal, intake_of
from dealflow.infra.rendering import render_in
from dealflow.infra.words import Words
from dealflow.reports.tables import stage_title
from models.keys import SIGNING_WAIT
from models.matrix import load_matrix
from models.settings import get_settings
from models.signing import ContractSigned
from tasks.signing import due_at_handoff
from web.pages import browser_language, reader_language
from web.pages import message_page as _message

router = APIRouter()

_NOT_SIGNING = (Words("This link is not valid"), Words("It is not a signing link."), 403)
_DEAL_GONE = (Words("Deal not found"), Words("This deal no longer exists in Dealflow."), 404)
_NOT_RECORDED = Words("Signed contract not recorded")
_PROBLEMS = {
    LinkProblem.MALFORMED: Words("It is malformed."),
    LinkProblem.FORGED: Words("It is forged."),
    LinkProblem.EXPIRED: Words("It is expired."),
}


def _signing_claim(token: str, request: Request) -> tuple[str, str, str, str] | HTMLResponse:
    """The deal, the rep and the run the link names, and the rep's language."""
    try:
        claim = verify(token, link_keys(), utcnow(), Purpose.SIGNING)
    except LinkError as exc:
        language = browser_language(request.headers)
        if exc.problem is LinkProblem.WRONG_PURPOSE:
            return _message(*_NOT_SIGNING, language=language)
        return _message(
            Words("This link cannot be used"),
            [
                _PROBLEMS[exc.problem],
                Words(
                    "Open the link from your email again, or record the signed contract "
                    "with `dealflow deal sign`."
                ),
            ],
            410 if exc.problem is LinkProblem.EXPIRED else 403,
            language=language,
        )
    language = reader_language(claim, request.headers)
    if claim.gate != SIGNING_WAIT:
        return _message(*_NOT_SIGNING, language=language)
    return claim.deal_id, claim.approver, claim.run_id, language


@router.get("/signing/{token}", response_class=HTMLResponse)
def show_signing(token: str, request: Request) -> HTMLResponse:
    """The signing page; opening it changes nothing (mail scanners open links)."""
    claim = _signing_claim(token, request)
    if isinstance(claim, HTMLResponse):
        return claim
    deal_id, rep, _run, language = claim
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
        return _message(*_DEAL_GONE, language=language)
    return HTMLResponse(html)


@router.post("/signing/{token}", response_class=HTMLResponse)
def post_signing(
    token: str,
    request: Request,
    signed_by: Annotated[str, Form(max_length=MAX_SIGNER)] = "",
    signed_on: Annotated[str, Form(max_length=10)] = "",
    document: Annotated[str, Form(max_length=MAX_DOCUMENT)] = "",
) -> HTMLResponse:
    claim = _signing_claim(token, request)
    if isinstance(claim, HTMLResponse):
        return claim
    deal_id, rep, run_id, language = claim
    try:
        day = dt.date.fromisoformat(signed_on) if signed_on else None
    except ValueError:
        return _message(
            Words("Not a date"),
            Words("Give the date as YYYY-MM-DD (got %(given)r).", given=signed_on),
            400,
            language=language,
        )
    try:
        answered = record_signature(
            deal_id, signed_by=signed_by, document=document, signed_on=day, by=rep, run_id=run_id
        )
    except DealNotFound:
        return _message(*_DEAL_GONE, language=language)
    except SigningError as exc:
        return _message(_NOT_RECORDED, exc.said, 409, language=language)
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
    return _not_signed(deal_id, answered, language)


def _not_signed(deal_id: str, answered: Outcome, language: str) -> HTMLResponse:
    """The signing page for each outcome but RESUMED; Prefect's words go to the log."""
    if answered.earlier is not None:
        return _message(
            _NOT_RECORDED, already_signed(deal_id, answered.earlier), 409, language=language
        )
    try_again = Words("Please try again")
    match answered.why:
        case Why.ON_ITS_WAY:
            return _message(
                try_again,
                Words(
                    "Deal %(deal_id)s is not waiting for the signed contract yet (it is at "
                    "%(stage)s). Nothing was recorded; try again in a minute.",
                    deal_id=deal_id,
                    stage=answered.stage,
                ),
                503,
                language=language,
            )
        case Why.CRASHED | Why.RESTARTING:
            return _message(
                try_again,
                Words(
                    "This deal's workflow is being restarted. Nothing was recorded; try again "
                    "in a few minutes."
                ),
                503,
                language=language,
            )
        case Why.UNREACHABLE:
            return _message(
                try_again,
                Words(
                    "Dealflow cannot reach its workflow server right now. Nothing was "
                    "recorded; try again in a minute."
                ),
                503,
                language=language,
            )
        case Why.REFUSED:
            words = Words(
                "The workflow server did not accept it. Nothing was recorded; operations can "
                "tell you why."
            )
        case Why.NO_RUN | Why.OTHER_RUN:
            words = Words(
                "This link does not belong to the current run of %(deal_id)s.", deal_id=deal_id
            )
        case Why.RUN_GONE:
            words = Words(
                "This deal's workflow run no longer exists. Nothing was recorded; ask operations."
            )
        case _:
            words = Words(
                "Deal %(deal_id)s is not waiting for the signed contract (it is at %(stage)s).",
                deal_id=deal_id,
                stage=answered.stage,
            )
    return _message(_NOT_RECORDED, words, 409, language=language)
