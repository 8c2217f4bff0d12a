"""Reading and writing a deal's records: the pieces tasks, the web service and the CLI share."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.echo import echo
from models.deal import STORED, DealIntake
from models.tables import Approval, Deal, StageTransition


class DealNotFound(LookupError):
    def __init__(self, deal_id: str) -> None:
        super().__init__(f"no deal with id {echo(deal_id)}")
        self.deal_id = deal_id


def get_deal(session: Session, deal_id: str, *, for_update: bool = False) -> Deal:
    query = select(Deal).where(Deal.id == deal_id)
    deal = session.scalar(query.with_for_update() if for_update else query)
    if deal is None:
        raise DealNotFound(deal_id)
    return deal


def intake_of(deal: Deal) -> DealIntake:
    return DealIntake.model_validate(deal.payload, context={STORED: True})


def add_transition(
    session: Session,
    deal: Deal,
    *,
    key: str,
    stage: str,
    event: str,
    actor: str,
    comment: str = "",
    at: dt.datetime | None = None,
) -> bool:
    """Add one timeline entry under ``key`` unless it is there; True if added now."""
    exists = session.scalar(
        select(StageTransition.id).where(
            StageTransition.deal_id == deal.id, StageTransition.key == key
        )
    )
    if exists is not None:
        return False
    at = at or utcnow()
    session.add(
        StageTransition(
            deal_id=deal.id, key=key, stage=stage, event=event, actor=actor, comment=comment, at=at
        )
    )
    deal.stage = stage
    deal.updated_at = at
    session.flush()
    return True


def note_on_timeline(deal_id: str, key: str, event: str) -> None:
    """A timeline entry that leaves the deal's stage as it is (a delayed email, a run
    started again), in its own transaction; nothing if the deal was never stored."""
    with session_scope() as session:
        try:
            deal = get_deal(session, deal_id, for_update=True)
        except DealNotFound:
            return
        add_transition(session, deal, key=key, stage=deal.stage, event=event, actor="dealflow")


def wait_on(deal: Deal, email: str | None, name: str | None, since: dt.datetime | None) -> None:
    deal.waiting_on, deal.waiting_on_name, deal.waiting_since = email, name, since


def timeline(session: Session, deal_id: str) -> list[StageTransition]:
    return list(
        session.scalars(
            select(StageTransition)
            .where(StageTransition.deal_id == deal_id)
            .order_by(StageTransition.at, StageTransition.id)
        )
    )


def on_timeline(session: Session, deal_id: str, key: str) -> bool:
    """Whether the deal's timeline has an entry under ``key`` (an effect done once)."""
    found = session.scalar(
        select(StageTransition.id).where(
            StageTransition.deal_id == deal_id, StageTransition.key == key
        )
    )
    return found is not None


def approvals(session: Session, deal_id: str) -> list[Approval]:
    return list(
        session.scalars(
            select(Approval).where(Approval.deal_id == deal_id).order_by(Approval.position)
        )
    )


def get_approval(session: Session, deal_id: str, gate: str) -> Approval | None:
    return session.scalar(
        select(Approval).where(Approval.deal_id == deal_id, Approval.gate == gate)
    )


def people_on_deal(session: Session, deal: Deal, *, except_gate: str | None = None) -> set[str]:
    """Emails of the submitter and of everyone holding a gate of the deal (four eyes)."""
    emails = {deal.sales_rep_email.lower()}
    for approval in approvals(session, deal.id):
        if approval.gate != except_gate:
            emails |= {e.lower() for e in (approval.assignee_email, approval.escalated_to) if e}
    return emails
