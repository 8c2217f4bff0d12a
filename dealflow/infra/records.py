"""Reading and writing a deal's records: the pieces tasks, the web service and the CLI share."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.echo import echo
from models.deal import STORED, DealIntake
from models.decision import GateDecision
from models.revisions import Revised, changed_fields
from models.settings import get_settings
from models.tables import (
    Approval,
    Deal,
    DealRevision,
    Invoice,
    InvoiceStatus,
    StageTransition,
    open_deal,
)


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


def stored_intake(payload: dict[str, Any]) -> DealIntake:
    """A deal's content as it was stored (checks added since do not apply to it)."""
    return DealIntake.model_validate(payload, context={STORED: True})


def intake_of(deal: Deal) -> DealIntake:
    return stored_intake(deal.payload)


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


@dataclass(frozen=True)
class Recorded:
    """A duty recorded once on a deal's timeline (``record_once``): now (``new``) or
    before, by whom, when, and its comment (the reference, note or answer given)."""

    new: bool
    by: str
    at: dt.datetime
    comment: str

    @property
    def when(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} UTC"


def record_once(
    deal_id: str,
    key: str,
    *,
    after: str,
    refuse: Callable[[Deal], Exception],
    event: str,
    comment: str,
    by: Callable[[Deal], str],
    at: dt.datetime | None = None,
) -> Recorded:
    """Put a duty's entry ``key`` on the deal's timeline once, under the deal's row lock,
    by ``by(deal)``, with ``comment``. Recorded before: that record, unchanged (not
    ``new``). Before the entry it follows (``after``) is on the timeline, ``refuse(deal)``
    is raised and nothing is recorded. DealNotFound for no such deal."""
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        entries = {
            t.key: t
            for t in session.scalars(
                select(StageTransition).where(
                    StageTransition.deal_id == deal_id, StageTransition.key.in_([after, key])
                )
            )
        }
        done = entries.get(key)
        if done is not None:
            return Recorded(False, done.actor, done.at, done.comment)
        if after not in entries:
            raise refuse(deal)
        actor, at = by(deal), at or utcnow()
        add_transition(
            session,
            deal,
            key=key,
            stage=deal.stage,
            event=event,
            actor=actor,
            comment=comment,
            at=at,
        )
        return Recorded(True, actor, at, comment)


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


def _current_revision(deal_id: str) -> ColumnElement[bool]:
    """SQL: an approval of the deal's current revision (the earlier ones stay as history)."""
    current = select(Deal.revision).where(Deal.id == deal_id).scalar_subquery()
    return and_(Approval.deal_id == deal_id, Approval.revision == current)


def approvals(session: Session, deal_id: str, revision: int | None = None) -> list[Approval]:
    """The gates of the deal's current revision (or of ``revision``), in order."""
    which = (
        _current_revision(deal_id)
        if revision is None
        else and_(Approval.deal_id == deal_id, Approval.revision == revision)
    )
    return list(session.scalars(select(Approval).where(which).order_by(Approval.position)))


def get_approval(session: Session, deal_id: str, gate: str) -> Approval | None:
    return session.scalar(select(Approval).where(_current_revision(deal_id), Approval.gate == gate))


def store_decision(row: Approval, decision: GateDecision) -> None:
    """Write an approver's decision on its gate: by the web service as it resumes the
    run, or by the run itself when the web service's commit was lost (tasks/answers.py)."""
    row.decision = "approved" if decision.approved else "rejected"
    row.decided_by, row.decided_by_name = decision.decided_by, decision.decided_by_name
    row.comment, row.decided_at = decision.comment, decision.decided_at


def replaced_by(
    session: Session, deal: Deal, revision: int, run_id: str | None = None
) -> int | None:
    """The deal's current revision if a run of its ``revision`` (the run ``run_id``, if
    given) no longer carries it: a revision submitted since replaced that one, and has a
    run of its own. None while the run is the deal's."""
    if deal.revision != revision:
        return deal.revision
    if run_id is not None:
        kept = session.scalar(
            select(DealRevision.revision).where(
                DealRevision.deal_id == deal.id, DealRevision.flow_run_id == run_id
            )
        )
        if kept is not None:  # the run of a revision kept as history
            return deal.revision
    return None


def earlier_revisions(session: Session, deal_id: str) -> list[DealRevision]:
    """The deal's revisions before its current one, oldest first."""
    return list(
        session.scalars(
            select(DealRevision)
            .where(DealRevision.deal_id == deal_id)
            .order_by(DealRevision.revision)
        )
    )


def changes_for_gate(session: Session, deal: Deal, gate: str) -> Revised | None:
    """What a revised deal changed since the revision its ``gate`` was last asked about
    (the version that gate's approver saw), else since the revision before it; None for
    a deal never revised."""
    if deal.revision <= 1:
        return None
    seen = session.scalar(
        select(func.max(Approval.revision)).where(
            Approval.deal_id == deal.id,
            Approval.gate == gate,
            Approval.revision < deal.revision,
            Approval.requested_at.is_not(None),
        )
    )
    since = seen or deal.revision - 1
    before = session.scalar(
        select(DealRevision).where(DealRevision.deal_id == deal.id, DealRevision.revision == since)
    )
    if before is None:
        return None
    changes = changed_fields(stored_intake(before.payload), intake_of(deal))
    return Revised(since=since, current=deal.revision, changes=changes)


def people_on_deal(session: Session, deal: Deal, *, except_gate: str | None = None) -> set[str]:
    """Emails of the submitter and of everyone holding a gate of the deal (four eyes)."""
    emails = {deal.sales_rep_email.lower()}
    for approval in approvals(session, deal.id):
        if approval.gate != except_gate:
            emails |= {e.lower() for e in (approval.assignee_email, approval.escalated_to) if e}
    return emails


class NoDatabase(LookupError):
    """Dealflow's database cannot be read (not created yet, unreachable)."""


def latest_open_date() -> dt.date | None:
    """The latest date open deals reach: delivery starts of deals not closed, and due
    dates of invoices not settled; None when no deal is open. Raises NoDatabase rather
    than create a SQLite file that is not there."""
    url = get_settings().resolved_database_url
    path = url.removeprefix("sqlite:///")
    if url.startswith("sqlite:///") and path != ":memory:" and not Path(path).exists():
        raise NoDatabase("none created yet")
    try:
        with session_scope(url) as session:
            due = session.scalar(
                select(func.max(Invoice.due_date)).where(
                    Invoice.status.not_in(InvoiceStatus.SETTLED)
                )
            )
            start = session.scalar(
                select(func.max(Deal.payload["delivery_start"].as_string())).where(
                    open_deal()  # handed-off deals too: their delivery is under way
                )
            )
    except SQLAlchemyError as exc:
        raise NoDatabase(str(getattr(exc, "orig", None) or exc).splitlines()[0]) from exc
    dates = [due, dt.date.fromisoformat(start) if start else None]
    return max((d for d in dates if d is not None), default=None)
