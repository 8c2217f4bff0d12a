"""The delivery manager's acceptance page, opened from the link in their email: showing
it changes nothing (mail scanners open links); posting it records the customer's
acceptance once and resumes the deal's run."""

from __future__ import annotations

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
from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.deal_links import deal_page_url
from dealflow.infra.links import Purpose
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
from web.pages import message_page as _message
from web.step_links import DEAL_GONE, StepPage, claim_of, form_date, not_answered

router = APIRouter()

ACCEPTANCE_PAGE = StepPage(
    purpose=Purpose.ACCEPTANCE,
    step=ACCEPTANCE_WAIT,
    not_this_kind=Words("It is not an acceptance link."),
    record_otherwise=Words(
        "Open the link from your email again, or record the acceptance with `dealflow deal accept`."
    ),
    not_recorded=Words("Acceptance not recorded"),
    already=already_accepted,
    not_yet=lambda deal_id, stage: Words(
        "Deal %(deal_id)s is not waiting for acceptance yet (it is at %(stage)s). "
        "Nothing was recorded; try again in a minute.",
        deal_id=deal_id,
        stage=stage,
    ),
    not_waiting=lambda deal_id, stage: Words(
        "Deal %(deal_id)s is not waiting for acceptance (it is at %(stage)s).",
        deal_id=deal_id,
        stage=stage,
    ),
    renew=lambda deal_id: Words(
        "Operations can mail a fresh link with `dealflow deal renew-acceptance-link %(deal_id)s`.",
        deal_id=deal_id,
    ),
)


@router.get("/acceptance/{token}", response_class=HTMLResponse)
def show_acceptance(token: str, request: Request) -> HTMLResponse:
    """The acceptance page; opening it changes nothing (mail scanners open links)."""
    claim = claim_of(ACCEPTANCE_PAGE, token, request)
    if isinstance(claim, HTMLResponse):
        return claim
    deal_id, manager, language = claim.deal_id, claim.person, claim.language
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
        return _message(*DEAL_GONE, language=language)
    return HTMLResponse(html)


@router.post("/acceptance/{token}", response_class=HTMLResponse)
def post_acceptance(
    token: str,
    request: Request,
    accepted_on: Annotated[str, Form(max_length=10)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
    report: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    claim = claim_of(ACCEPTANCE_PAGE, token, request)
    if isinstance(claim, HTMLResponse):
        return claim
    deal_id, language = claim.deal_id, claim.language
    day = form_date(accepted_on, language)
    if isinstance(day, HTMLResponse):
        return day
    try:
        answered = accept_delivery(
            deal_id,
            by=claim.person,
            accepted_on=day,
            note=note.strip(),
            report=report.strip(),
            run_id=claim.run_id,
        )
    except DealNotFound:
        return _message(*DEAL_GONE, language=language)
    except AcceptanceError as exc:
        return _message(ACCEPTANCE_PAGE.not_recorded, exc.said, 409, language=language)
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
    return not_answered(ACCEPTANCE_PAGE, deal_id, answered, language)


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
