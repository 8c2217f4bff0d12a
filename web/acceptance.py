"""The delivery manager's acceptance page, opened from the link in their email: showing
it changes nothing (mail scanners open links); posting it records the customer's
acceptance once and resumes the deal's run."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form
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
from dealflow.reports.tables import stage_title
from models.deal import DealIntake
from models.finance import DeliveryAcceptance
from models.keys import ACCEPTANCE_WAIT
from models.matrix import load_matrix
from models.settings import get_settings
from models.tables import Invoice
from tasks.handoff import INVOICED_AT_ACCEPTANCE
from web.pages import message_page as _message

router = APIRouter()


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
            intake = intake_of(deal)
            matrix = load_matrix(get_settings().matrix_path)
            # In the language of the delivery manager the link was issued to.
            language = matrix.language_of(manager, deal.team)
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
            f"Thank you: acceptance of {deal_id} on {accepted.accepted_on} is recorded. "
            f"{_released(deal_id)}",
            deal_page=deal_page_url(deal_id),
        )
    return _not_accepted(deal_id, answered)


def due_on_acceptance(deal: DealIntake) -> list[str]:
    """The installments the customer's acceptance releases, by their labels."""
    return [p.label for p in deal.payment_terms.schedule if p.milestone in INVOICED_AT_ACCEPTANCE]


def _released(deal_id: str) -> str:
    """What the acceptance set going: the deal's invoices due on acceptance, if it has any."""
    with session_scope() as session:
        due = due_on_acceptance(intake_of(get_deal(session, deal_id)))
    if due:
        return f"The invoices due on acceptance go to the customer now: {', '.join(due)}."
    return (
        "No invoice is due on acceptance; Dealflow follows up the payment of the deal's invoices."
    )


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
