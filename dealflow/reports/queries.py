"""The reports' reads: a few set-based queries of compact columns, never one per deal.

Timelines are streamed in batches in (deal, time) order; everything else is grouped in
SQL or fetched as one narrow row per approval or invoice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from dealflow.reports.measures import ZERO, InvoiceRow, Period, TimelineRow, WaitingDeal
from models import keys
from models.keys import PLAN_CONFIRMED
from models.tables import Approval, Deal, Invoice, InvoiceStatus, Payment, StageTransition

BATCH = 5000
# A kicked-off deal's delivery plan counts as confirmed once its timeline has this key.


def _active_in(period: Period) -> Select[str]:
    return (
        select(StageTransition.deal_id)
        .where(StageTransition.at >= period.start, StageTransition.at < period.end)
        .distinct()
    )


def timelines(session: Session, period: Period) -> Iterator[TimelineRow]:
    """The whole timeline, up to the period's end, of every deal with an entry in it."""
    query = (
        select(
            StageTransition.deal_id, StageTransition.key, StageTransition.stage, StageTransition.at
        )
        .where(StageTransition.deal_id.in_(_active_in(period)), StageTransition.at < period.end)
        .order_by(StageTransition.deal_id, StageTransition.at, StageTransition.id)
        .execution_options(yield_per=BATCH)
    )
    for row in session.execute(query):
        yield TimelineRow(*row)


class DealFacts(NamedTuple):
    team: str
    sales_rep: str
    amount: Decimal
    currency: str


def deal_facts(session: Session, period: Period) -> dict[str, DealFacts]:
    """Team, rep and amount of every deal with a timeline entry in ``period``."""
    query = select(Deal.id, Deal.team, Deal.sales_rep_name, Deal.amount, Deal.currency).where(
        Deal.id.in_(_active_in(period))
    )
    return {
        row[0]: DealFacts(*row[1:])
        for row in session.execute(query.execution_options(yield_per=BATCH))
    }


class GateRow(NamedTuple):
    deal_id: str
    team: str
    gate: str
    requested_at: dt.datetime
    decided_at: dt.datetime | None
    decision: str | None
    decided_by: str | None


def gates_touching(session: Session, period: Period) -> list[GateRow]:
    """Gates asked or decided within ``period`` (decisions after it are not yet known)."""
    decided_in = and_(Approval.decided_at >= period.start, Approval.decided_at < period.end)
    asked_in = and_(Approval.requested_at >= period.start, Approval.requested_at < period.end)
    rows = session.execute(
        select(
            Approval.deal_id,
            Deal.team,
            Approval.gate,
            Approval.requested_at,
            Approval.decided_at,
            Approval.decision,
            func.coalesce(Approval.decided_by_name, Approval.decided_by),
        )
        .join(Deal, Deal.id == Approval.deal_id)
        .where(Approval.requested_at.is_not(None), or_(decided_in, asked_in))
        .execution_options(yield_per=BATCH)
    )
    result = []
    for deal_id, team, gate, asked, decided, decision, by in rows:
        assert asked is not None
        known = decided is not None and decided < period.end
        result.append(
            GateRow(
                deal_id,
                team,
                gate,
                asked,
                decided if known else None,
                decision if known else None,
                by if known else None,
            )
        )
    return result


def _invoice_rows(session: Session, paid_until: dt.date, *conditions: Any) -> list[InvoiceRow]:
    """Invoices as they stood at the end of ``paid_until``: payments received by then.

    Two grouped reads, merged here: a join of the invoices with all their payments'
    sums was planned as a nested loop by PostgreSQL and took seconds at scale."""
    chosen = select(Invoice.id).where(*conditions)
    paid = dict(
        session.execute(
            select(Payment.invoice_id, func.sum(Payment.applied))
            .where(Payment.received_on <= paid_until, Payment.invoice_id.in_(chosen))
            .group_by(Payment.invoice_id)
        ).all()
    )
    rows = session.execute(
        select(
            Invoice.id,
            Invoice.number,
            Invoice.currency,
            Invoice.amount,
            Invoice.issue_date,
            Invoice.due_date,
            Invoice.status,
            Invoice.paid_at,
        ).where(*conditions)
    )
    return [
        InvoiceRow(
            number,
            currency,
            Decimal(amount),
            issued,
            due,
            status,
            Decimal(paid.get(invoice_id) or ZERO),
            paid_at.date()
            if paid_at is not None and status == InvoiceStatus.PAID and paid_at.date() <= paid_until
            else None,
        )
        for invoice_id, number, currency, amount, issued, due, status, paid_at in rows
    ]


def receivables(session: Session, as_of: dt.date) -> list[InvoiceRow]:
    """Invoices issued by ``as_of`` that may still have been open then, with what was
    paid up to that day."""
    still_open = or_(
        Invoice.status != InvoiceStatus.PAID,
        Invoice.paid_at.is_(None),
        Invoice.paid_at >= dt.datetime.combine(as_of, dt.time(0), dt.UTC),
    )
    return _invoice_rows(
        session,
        as_of,
        Invoice.issue_date <= as_of,
        Invoice.status != InvoiceStatus.WRITTEN_OFF,
        still_open,
    )


def falling_due(session: Session, first: dt.date, last: dt.date) -> list[InvoiceRow]:
    """Invoices due between the two days, with what was paid by the last."""
    return _invoice_rows(session, last, Invoice.due_date >= first, Invoice.due_date <= last)


def paid_in(session: Session, period: Period) -> list[InvoiceRow]:
    """Invoices paid in full within ``period``."""
    return _invoice_rows(
        session,
        dt.date.max,
        Invoice.status == InvoiceStatus.PAID,
        Invoice.paid_at >= period.start,
        Invoice.paid_at < period.end,
    )


def issued(session: Session, first: dt.date, last: dt.date) -> list[tuple[str, int, Decimal]]:
    """Per currency: invoices issued between the two days, and their amount."""
    rows = session.execute(
        select(Invoice.currency, func.count(), func.sum(Invoice.amount))
        .where(Invoice.issue_date >= first, Invoice.issue_date <= last)
        .group_by(Invoice.currency)
        .order_by(Invoice.currency)
    )
    return [(currency, count, Decimal(total)) for currency, count, total in rows]


def collected(session: Session, first: dt.date, last: dt.date) -> list[tuple[str, int, Decimal]]:
    """Per currency: payments received between the two days, applied to invoices."""
    rows = session.execute(
        select(Payment.currency, func.count(), func.sum(Payment.applied))
        .where(Payment.received_on >= first, Payment.received_on <= last)
        .group_by(Payment.currency)
        .order_by(Payment.currency)
    )
    return [(currency, count, Decimal(total)) for currency, count, total in rows]


# --- the pipeline as it is now ----------------------------------------------------------


def stage_counts(session: Session) -> list[tuple[str, str | None, int]]:
    """(stage, outcome, deals) for every stage a deal is in."""
    rows = session.execute(
        select(Deal.stage, Deal.outcome, func.count()).group_by(Deal.stage, Deal.outcome)
    )
    return [(stage, outcome, count) for stage, outcome, count in rows]


def waiting(session: Session) -> list[WaitingDeal]:
    """Open deals that wait on someone, with since when (limit and elapsed time unknown
    here: the calendar's to fill in)."""
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
        .where(Deal.outcome.is_(None), Deal.waiting_since.is_not(None))
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
