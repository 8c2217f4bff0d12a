"""Recording the customer's acceptance of the delivery (link or CLI): resumes the deal's
run, which then issues the invoices due on acceptance."""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import select

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.prefect_api import pause_state, resume_with_answer
from dealflow.infra.records import add_transition, get_deal
from models import keys
from models.finance import DeliveryAcceptance
from models.keys import ACCEPTANCE_WAIT, waits_for
from models.matrix import load_matrix
from models.settings import get_settings
from models.tables import StageTransition


class AcceptanceError(ValueError):
    """Acceptance cannot be recorded now; nothing was changed. The message says why."""


class AlreadyAccepted(AcceptanceError):
    pass


def _already(deal_id: str, entry: StageTransition) -> AlreadyAccepted:
    return AlreadyAccepted(
        f"Acceptance of {deal_id} was already recorded by {entry.actor} "
        f"at {entry.at:%Y-%m-%d %H:%M} UTC."
    )


def accepted_entry(deal_id: str) -> StageTransition | None:
    with session_scope() as session:
        return session.scalar(
            select(StageTransition).where(
                StageTransition.deal_id == deal_id, StageTransition.key == keys.ACCEPTED
            )
        )


def _wait_for_acceptance_step(deal_id: str, run_id: str, patience: float) -> None:
    """Return once the run waits for acceptance; the link is mailed a moment before the
    run suspends, so a quick click waits that moment out instead of being refused."""
    deadline = time.monotonic() + patience
    while True:
        state, key = pause_state(run_id)
        if state == "PAUSED" and waits_for(key, ACCEPTANCE_WAIT):
            return
        if state not in {"RUNNING", "PENDING", "SCHEDULED"} or time.monotonic() > deadline:
            with session_scope() as session:
                stage = get_deal(session, deal_id).stage
            raise AcceptanceError(
                f"Deal {deal_id} is not waiting for acceptance (it is at {stage})."
            )
        time.sleep(0.2)


def accept_delivery(
    deal_id: str,
    *,
    by: str | None = None,
    accepted_on: dt.date | None = None,
    note: str = "",
    run_id: str | None = None,
) -> DeliveryAcceptance:
    """Record acceptance once and resume the run waiting for it.

    ``by`` defaults to the team's delivery manager; ``run_id``, when given (a link),
    must be the deal's run. Recorded and resumed in one transaction: if the workflow
    server refuses, nothing is kept.
    """
    settings = get_settings()
    matrix = load_matrix(settings.matrix_path)
    with session_scope() as session:
        flow_run_id = get_deal(session, deal_id).flow_run_id
    earlier = accepted_entry(deal_id)
    if earlier is not None:
        raise _already(deal_id, earlier)
    if flow_run_id is not None:
        _wait_for_acceptance_step(deal_id, flow_run_id, settings.resume_wait_seconds)
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        earlier = session.scalar(
            select(StageTransition).where(
                StageTransition.deal_id == deal_id, StageTransition.key == keys.ACCEPTED
            )
        )
        if earlier is not None:
            raise _already(deal_id, earlier)
        if deal.flow_run_id is None or (run_id is not None and run_id != deal.flow_run_id):
            raise AcceptanceError(f"This link does not belong to the current run of {deal_id}.")
        manager = matrix.first_for(matrix.handoff.delivery_role, deal.team)
        email = by or manager.email
        person = next((p for p in matrix.people if p.email.lower() == email.lower()), None)
        zone = matrix.calendar(deal.team).zone
        today = utcnow().astimezone(zone).date()
        day = accepted_on or today
        if day > today:
            raise AcceptanceError(f"The acceptance date {day.isoformat()} is in the future.")
        kickoff = session.scalar(
            select(StageTransition.at).where(
                StageTransition.deal_id == deal_id, StageTransition.key == keys.KICKOFF
            )
        )
        kickoff_day = kickoff.astimezone(zone).date() if kickoff is not None else None
        if kickoff_day is not None and day < kickoff_day:  # both on the team's calendar
            raise AcceptanceError(
                f"The acceptance date {day.isoformat()} is before the delivery kickoff "
                f"({kickoff_day.isoformat()})."
            )
        acceptance = DeliveryAcceptance(
            accepted_by=email,
            accepted_by_name=person.name if person else email,
            accepted_on=day,
            note=note,
        )
        add_transition(
            session,
            deal,
            key=keys.ACCEPTED,
            stage="accepted",
            event=f"Delivery accepted by the customer on {day.isoformat()}"
            + (f": {note}" if note else ""),
            actor=email,
        )
        resume_with_answer(deal.flow_run_id, ACCEPTANCE_WAIT, acceptance)
    return acceptance
