"""The delivery manager's acceptance page, opened from the link in their email: showing
it changes nothing (mail scanners open links); posting it records the customer's
acceptance once and resumes the deal's run."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from dealflow.answers.acceptance import (
    AcceptanceError,
    accept_delivery,
    accepted_entry,
    already_accepted,
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
from models.deal import DealIntake
from models.finance import DeliveryAcceptance
from models.keys import ACCEPTANCE_WAIT
from models.matrix import load_matrix
from models.settings import get_settings
from models.tables import Invoice
from tasks.handoff import INVOICED_AT_ACCEPTANCE
from web.pages import browser_language, reader_language
from web.pages import message_page as _message

router = APIRouter()


_NOT_ACCEPTANCE = (Words("This link is not valid"), Words("It is not an acceptance link."), 403)
_DEAL_GONE = (Words("Deal not found"), Words("This deal no longer exists in Dealflow."), 404)
_NOT_RECORDED = Words("Acceptance not recorded")
_PROBLEMS = {
    LinkProblem.MALFORMED: Words("It is malformed."),
    LinkProblem.FORGED: Words("It is forged."),
    LinkProblem.EXPIRED: Words("It is expired."),
}


def _acceptance_claim(token: str, request: Request) -> tuple[str, str, str, str] | HTMLResponse:
    """The deal, the manager and the run the link names, and the manager's language."""
    try:
        claim = verify(token, link_keys(), utcnow(), Purpose.ACCEPTANCE)
    except LinkError as exc:
        language = browser_language(request.headers)
        if exc.problem is LinkProblem.WRONG_PURPOSE:
            return _message(*_NOT_ACCEPTANCE, language=language)
        said = [
            _PROBLEMS[exc.problem],
            Words(
                "Open the link from your email again, or record the acceptance with "
                "`dealflow deal accept`."
            ),
        ]
        if exc.problem is LinkProblem.EXPIRED and exc.claim is not None:
            language = reader_language(exc.claim, request.headers)
            said.append(
                Words(
                    "Operations can mail a fresh link with `dealflow deal "
                    "renew-acceptance-link %(deal_id)s`.",
                    deal_id=exc.claim.deal_id,
                )
            )
        return _message(
            Words("This link cannot be used"),
            said,
            410 if exc.problem is LinkProblem.EXPIRED else 403,
            language=language,
        )
    language = reader_language(claim, request.headers)
    if claim.gate != ACCEPTANCE_WAIT:
        return _message(*_NOT_ACCEPTANCE, language=language)
    return claim.deal_id, claim.approver, claim.run_id, language


@router.get("/acceptance/{token}", response_class=HTMLResponse)
def show_acceptance(token: str, request: Request) -> HTMLResponse:
    """The acceptance page; opening it changes nothing (mail scanners open links)."""
    claim = _acceptance_claim(token, request)
    if isinstance(claim, HTMLResponse):
        return claim
    deal_id, manager, _run, language = claim
    try:
        done = accepted_entry(deal_id)
        with session_scope() as session:
            deal = get_deal(session, deal_id)
            invoices = session.scalars(
                select(Invoice).where(Invoice.deal_id == deal_id).order_by(Invoice.sequence)
            ).all()
            intake = intake_of(deal)
            matrix = load_matrix(get_settings().matrix_path)
            html = render_in(
                language,
                "pages/acceptance.html",
                deal=intake,
                stage=stage_title(matrix, deal.stage, language),
                released=due_on_acceptance(intake),
                invoices=invoices,
                manager=manager,
                done=done,
                # The team's date, as the acceptance is judged: near midnight UTC it is
                # already tomorrow in Shanghai and Berlin.
                today=utcnow().astimezone(matrix.calendar(deal.team).zone).date(),
            )
    except DealNotFound:
        return _message(*_DEAL_GONE, language=language)
    return HTMLResponse(html)


@router.post("/acceptance/{token}", response_class=HTMLResponse)
def post_acceptance(
    token: str,
    request: Request,
    accepted_on: Annotated[str, Form(max_length=10)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
    report: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    claim = _acceptance_claim(token, request)
    if isinstance(claim, HTMLResponse):
        return claim
    deal_id, manager, run_id, language = claim
    try:
        day = dt.date.fromisoformat(accepted_on) if accepted_on else None
    except ValueError:
        return _message(
            Words("Not a date"),
            Words("Give the date as YYYY-MM-DD (got %(given)r).", given=accepted_on),
            400,
            language=language,
        )
    try:
        answered = accept_delivery(
            deal_id,
            by=manager,
            accepted_on=day,
            note=note.strip(),
            report=report.strip(),
            run_id=run_id,
        )
    except DealNotFound:
        return _message(*_DEAL_GONE, language=language)
    except AcceptanceError as exc:
        return _message(_NOT_RECORDED, exc.said, 409, language=language)
    accepted = answered.answer
    if isinstance(accepted, DeliveryAcceptance):
        return _message(
            Words("Acceptance recorded"),
            [
                Words(
                    "Thank you: acceptance of %(deal_id)s on %(day)s is recorded.",
                    deal_id=deal_id,
                    day=accepted.accepted_on,
                ),
                _released(deal_id),
            ],
            language=language,
            deal_page=deal_page_url(deal_id),
        )
    return _not_accepted(deal_id, answered, language)


def due_on_acceptance(deal: DealIntake) -> list[str]:
    """The installments the customer's acceptance releases, by their labels."""
    return [p.label for p in deal.payment_terms.schedule if p.milestone in INVOICED_AT_ACCEPTANCE]


def _released(deal_id: str) -> Words:
    """What the acceptance set going: the deal's invoices due on acceptance, if it has any."""
    with session_scope() as session:
        due = due_on_acceptance(intake_of(get_deal(session, deal_id)))
    if due:
        return Words(
            "The invoices due on acceptance go to the customer now: %(invoices)s.",
            invoices=", ".join(due),
        )
    return Words(
        "No invoice is due on acceptance; Dealflow follows up the payment of the deal's invoices."
    )


def _not_accepted(deal_id: str, answered: Outcome, language: str) -> HTMLResponse:
    """The acceptance page for each outcome but RESUMED; Prefect's words go to the log."""
    if answered.earlier is not None:
        said = already_accepted(deal_id, answered.earlier)
        return _message(_NOT_RECORDED, said, 409, language=language)
    try_again = Words("Please try again")
    match answered.why:
        case Why.ON_ITS_WAY:
            return _message(
                try_again,
                Words(
                    "Deal %(deal_id)s is not waiting for acceptance yet (it is at %(stage)s). "
                    "Nothing was recorded; try again in a minute.",
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
                "Deal %(deal_id)s is not waiting for acceptance (it is at %(stage)s).",
                deal_id=deal_id,
                stage=answered.stage,
            )
    return _message(_NOT_RECORDED, words, 409, language=language)
