"""The board's reads: the pipeline as it is now, each a set-based query of compact
columns (``queries`` has the reads of a period)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from dealflow.reports.queries import BATCH
from models import keys
from models.keys import PLAN_CONFIRMED
from models.tables import Deal, DealOutcome, Invoice, InvoiceStatus, StageTransition, open_deal


def is_open(outcome: str | None) -> bool:
    """Whether a deal with ``outcome`` is still on its way (``open_deal`` in Python)."""
    return outcome not in DealOutcome.FINAL


def stage_counts(session: Session) -> list[tuple[str, str | None, int]]:
    """(stage, outcome, deals) for every stage a deal is in."""
    rows = session.execute(
        select(Deal.stage, Deal.outcome, func.count()).group_by(Deal.stage, Deal.outcome)
    )
    return [(stage, outcome, count) for stage, outcome, count in rows]


class WaitingDeal(NamedTuple):
    deal_id: str
    title: str
    team: str
    stage: str
    grade: str | None
    waiting_on: str
    since: dt.datetime
    limit_hours: float | None  # the stage's or gate's time limit, if it has one
    elapsed_hours: float  # business hours since ``since``

    @property
    def left_hours(self) -> float | None:
        """Business hours left before the limit; negative: how far past it."""
        return None if self.limit_hours is None else self.limit_hours - self.elapsed_hours

    @property
    def overdue(self) -> bool:
        left = self.left_hours
        return left is not None and left < 0


def waiting(session: Session) -> list[WaitingDeal]:
    """Open deals that wait on someone, with since when (limit and elapsed time unknown
    here: the calendar's to fill in); handed-off deals too, waiting for the acceptance or
    the payment."""
    rows = session.execute(
        select(
            Deal.id,
            Deal.title,
            Deal.team,
            Deal.stage,
            Deal.grade,
            func.coalesce(Deal.waiting_on_name, Deal.waiting_on),
            Deal.waiting_since,
        )
        .where(open_deal(), Deal.waiting_since.is_not(None))
        .execution_options(yield_per=BATCH)
    )
    return [
        WaitingDeal(*row, limit_hours=None, elapsed_hours=0.0)  # type: ignore[arg-type]  # since is not null
        for row in rows
    ]


class PlanRow(NamedTuple):
    deal_id: str
    title: str
    team: str
    kicked_off: dt.datetime
    delivery_start: str


def unconfirmed_plans(session: Session, today: dt.date, horizon_days: int = 90) -> list[PlanRow]:
    """Deals handed to delivery whose timeline has no confirmed delivery plan yet, and
    whose delivery starts at most ``horizon_days`` before ``today`` (older ones are
    under way: their plan is history)."""
    since = (today - dt.timedelta(days=horizon_days)).isoformat()
    # A kicked-off deal's delivery plan counts as confirmed once its timeline has this key.
    confirmed = select(StageTransition.deal_id).where(StageTransition.key == PLAN_CONFIRMED)
    rows = session.execute(
        select(
            Deal.id,
            Deal.title,
            Deal.team,
            StageTransition.at,
            Deal.payload["delivery_start"].as_string(),
        )
        .join(StageTransition, StageTransition.deal_id == Deal.id)
        .where(
            StageTransition.key == keys.KICKOFF,
            Deal.id.not_in(confirmed),
            Deal.payload["delivery_start"].as_string() >= since,  # ISO dates sort as text
        )
        .execution_options(yield_per=BATCH)
    )
    return [PlanRow(*row) for row in rows]


class DutyRow(NamedTuple):
    """A duty beside a deal's run still open: its key on the timeline, and since when."""

    deal_id: str
    title: str
    team: str
    key: str
    at: dt.datetime


# A duty's opening entry, and the entry that ends it.
DUTIES = {
    keys.ARCHIVE_REQUESTED: keys.ARCHIVED,
    keys.COMPLAINT_OPENED: keys.COMPLAINT_ANSWERED,
    keys.REPURCHASE_REQUESTED: keys.REPURCHASE_RECORDED,
}


def open_duties(session: Session) -> list[DutyRow]:
    """The archiving, complaint and repurchase duties asked for and not done, and the
    kickoff of every delivery still running (its weekly reports are read separately)."""
    ended = StageTransition.__table__.alias("ended")
    rows = session.execute(
        select(Deal.id, Deal.title, Deal.team, StageTransition.key, StageTransition.at)
        .join(StageTransition, StageTransition.deal_id == Deal.id)
        .where(
            or_(
                *(
                    (StageTransition.key == opened)
                    & ~select(ended.c.id)
                    .where(ended.c.deal_id == Deal.id, ended.c.key == done)
                    .exists()
                    for opened, done in DUTIES.items()
                ),
                (StageTransition.key == keys.KICKOFF)
                & open_deal()
                & ~select(ended.c.id)
                .where(ended.c.deal_id == Deal.id, ended.c.key == keys.ACCEPTED)
                .exists(),
            )
        )
        .execution_options(yield_per=BATCH)
    )
    return [DutyRow(*row) for row in rows]


def progress_reported(session: Session, deal_ids: list[str]) -> set[tuple[str, str]]:
    """The (deal, key) of every weekly progress report of these deals."""
    if not deal_ids:
        return set()
    rows = session.execute(
        select(StageTransition.deal_id, StageTransition.key).where(
            StageTransition.deal_id.in_(deal_ids),
            StageTransition.key.like(f"{keys.PROGRESS_PREFIX}%"),
        )
    )
    return {(deal_id, key) for deal_id, key in rows}


class DunningRow(NamedTuple):
    number: str
    deal_id: str
    customer: str
    currency: str
    balance: Decimal
    due_date: dt.date
    status: str
    level: str | None


def chased_or_overdue(session: Session, today: dt.date) -> list[DunningRow]:
    """Unpaid invoices past their due date or on the dunning ladder, latest due first."""
    rows = session.execute(
        select(
            Invoice.number,
            Invoice.deal_id,
            Invoice.customer_name,
            Invoice.currency,
            Invoice.amount - Invoice.paid_amount,
            Invoice.due_date,
            Invoice.status,
            Invoice.dunning_level,
        )
        .where(
            Invoice.status.in_((*InvoiceStatus.COLLECTIBLE, InvoiceStatus.DISPUTED)),
            or_(Invoice.due_date < today, Invoice.dunning_rank > 0),
        )
        .order_by(Invoice.due_date, Invoice.number)
        .execution_options(yield_per=BATCH)
    )
    return [
        DunningRow(number, deal, customer, currency, Decimal(balance), due, status, level)
        for number, deal, customer, currency, balance, due, status, level in rows
    ]
