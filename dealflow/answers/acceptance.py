"""Recording the customer's acceptance of the delivery (link or CLI): resumes the deal's
run, which then issues the invoices due on acceptance."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from dealflow.answers.waiting_run import Earlier, Outcome, Patience, answer_waiting_run
from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.records import add_transition
from dealflow.infra.words import Words
from models import keys
from models.finance import DeliveryAcceptance
from models.keys import ACCEPTANCE_WAIT
from models.matrix import load_matrix
from models.settings import get_settings
from models.tables import Deal, StageTransition


class AcceptanceError(ValueError):
    """Acceptance cannot be recorded now; nothing was changed. The message says why, in
    the reader's language with ``said.in_language``."""

    def __init__(self, said: Words) -> None:
        super().__init__(said)
        self.said = said


def accepted_entry(deal_id: str) -> StageTransition | None:
    with session_scope() as session:
        return _accepted(session, deal_id)


def _accepted(session: Session, deal_id: str) -> StageTransition | None:
    return session.scalar(
        select(StageTransition).where(
            StageTransition.deal_id == deal_id, StageTransition.key == keys.ACCEPTED
        )
    )


def already_accepted(deal_id: str, earlier: Earlier) -> Words:
    if earlier.at is None:
        return Words(
            "Acceptance of %(deal_id)s was already recorded by %(by)s.",
            deal_id=deal_id,
            by=earlier.by,
        )
    return Words(
        "Acceptance of %(deal_id)s was already recorded by %(by)s at %(at)s.",
        deal_id=deal_id,
        by=earlier.by,
        at=earlier.at,
    )


def store_acceptance(session: Session, deal: Deal, accepted: DeliveryAcceptance) -> None:
    """Put the customer's acceptance on the deal's timeline (once): by whoever records it
    as they resume the run, or by the run itself when their commit was lost."""
    report = f", acceptance report {accepted.report}" if accepted.report else ""
    note = f": {accepted.note}" if accepted.note else ""
    add_transition(
        session,
        deal,
        key=keys.ACCEPTED,
        stage="accepted",
        event=f"Delivery accepted by the customer on {accepted.accepted_on.isoformat()}"
        f"{report}{note}",
        actor=accepted.accepted_by,
    )


def accept_delivery(
    deal_id: str,
    *,
    by: str | None = None,
    accepted_on: dt.date | None = None,
    note: str = "",
    report: str = "",
    run_id: str | None = None,
    patience: Patience | None = None,
) -> Outcome:
    """Record acceptance once and resume the run waiting for it; on RESUMED the outcome's
    answer is the DeliveryAcceptance.

    ``by`` defaults to the team's delivery manager; ``run_id``, when given (a link),
    must be the deal's run. Recorded and resumed in one transaction: if the workflow
    server refuses, nothing is kept. AcceptanceError for a date that cannot be.
    """
    matrix = load_matrix(get_settings().matrix_path)

    def earlier(session: Session, deal: Deal) -> Earlier | None:
        entry = _accepted(session, deal.id)
        return Earlier(entry.actor, entry.at, keys.ACCEPTED) if entry is not None else None

    def record(session: Session, deal: Deal) -> DeliveryAcceptance:
        manager = matrix.first_for(matrix.handoff.delivery_role, deal.team)
        email = by or manager.email
        person = next((p for p in matrix.people if p.email.lower() == email.lower()), None)
        zone = matrix.calendar(deal.team).zone
        today = utcnow().astimezone(zone).date()
        day = accepted_on or today
        if day > today:
            raise AcceptanceError(Words("The acceptance date %(day)s is in the future.", day=day))
        kickoff = session.scalar(
            select(StageTransition.at).where(
                StageTransition.deal_id == deal.id, StageTransition.key == keys.KICKOFF
            )
        )
        kickoff_day = kickoff.astimezone(zone).date() if kickoff is not None else None
        if kickoff_day is not None and day < kickoff_day:  # both on the team's calendar
            raise AcceptanceError(
                Words(
                    "The acceptance date %(day)s is before the delivery kickoff (%(kickoff)s).",
                    day=day,
                    kickoff=kickoff_day,
                )
            )
        accepted = DeliveryAcceptance(
            accepted_by=email,
            accepted_by_name=person.name if person else email,
            accepted_on=day,
            note=note,
            report=report,
        )
        store_acceptance(session, deal, accepted)
        return accepted

    return answer_waiting_run(
        deal_id, ACCEPTANCE_WAIT, record=record, earlier=earlier, run_id=run_id, patience=patience
    )
