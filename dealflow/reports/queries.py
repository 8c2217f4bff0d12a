"""The reports' reads: a few set-based queries of compact columns, never one per deal.

Timelines are streamed in batches in (deal, time) order; everything else is grouped in
SQL or fetched as one narrow row per approval or invoice. These are the reads of a
period; the board's reads of the pipeline as it is now are in ``board_queries``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from dealflow.reports.measures import ZERO, InvoiceRow, Period, TimelineRow
from models import keys
from models.satisfaction import score_in
from models.tables import Approval, Deal, Invoice, InvoiceStatus, Payment, StageTransition

BATCH = 5000


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


def deliveries(session: Session, period: Period) -> list[TimelineRow]:
    """For every deal kicked off before the period's end, the entries that say how its
    delivery went up to then: the kickoff, its end (acceptance, payment, rejection or
    loss) and its weekly progress reports. A delivery whose rep reported nothing has no
    entry in the period, and is still measured."""
    kicked_off = select(StageTransition.deal_id).where(
        StageTransition.key == keys.KICKOFF, StageTransition.at < period.end
    )
    query = (
        select(
            StageTransition.deal_id, StageTransition.key, StageTransition.stage, StageTransition.at
        )
        .where(
            StageTransition.deal_id.in_(kicked_off),
            StageTransition.at < period.end,
            or_(
                StageTransition.key.in_([keys.KICKOFF, keys.ACCEPTED, keys.CLOSED]),
                StageTransition.key.like(f"{keys.PROGRESS_PREFIX}%"),
                StageTransition.stage.in_(["rejected", "lost"]),
            ),
        )
        .order_by(StageTransition.deal_id, StageTransition.at, StageTransition.id)
    )
    return [TimelineRow(*row) for row in session.execute(query)]


def survey_scores(session: Session, period: Period) -> list[int]:
    """The customers' satisfaction scores answered within the period."""
    events = session.scalars(
        select(StageTransition.event).where(
            StageTransition.key == keys.SURVEY_ANSWERED,
            StageTransition.at >= period.start,
            StageTransition.at < period.end,
        )
    )
    return [score for event in events if (score := score_in(event)) is not None]


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
