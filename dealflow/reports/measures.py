"""The handbook's measures as pure functions over compact rows, so that a test can check
each by hand. Reading the rows (set-based SQL) is ``dealflow.reports.queries``' job.

Quantiles interpolate linearly between the closest ranks (the median of 1, 2, 3, 10 is
2.5; its p90 is 7.9). Durations of stages are calendar days; approval turnaround and
time limits are business hours on the deal team's calendar, as the matrix means them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

ZERO = Decimal(0)
AGING_BUCKETS = ("not due", "1-30 days", "31-60 days", "61-90 days", "over 90 days")
OPEN_INVOICE = ("open", "partially_paid", "disputed")


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values``, interpolating between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Summary:
    count: int = 0
    median: float | None = None
    p90: float | None = None
    mean: float | None = None

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            return cls()
        return cls(
            len(values), quantile(values, 0.5), quantile(values, 0.9), sum(values) / len(values)
        )


class Period(NamedTuple):
    """[start, end) in UTC."""

    start: dt.datetime
    end: dt.datetime

    def holds(self, moment: dt.datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end


# --- deals through their stages -------------------------------------------------------


class TimelineRow(NamedTuple):
    deal_id: str
    key: str
    stage: str
    at: dt.datetime


class Stay(NamedTuple):
    deal_id: str
    stage: str
    entered: dt.datetime
    left: dt.datetime | None  # None: the deal is still there (or it ended there)


def stays(rows: Iterable[TimelineRow]) -> Iterator[Stay]:
    """Each deal's stays in its stages, from its timeline sorted by deal and time. Entries
    that repeat the stage (a reminder, a delegation) do not start a new stay."""
    current: Stay | None = None
    for row in rows:
        if current is not None and current.deal_id == row.deal_id:
            if row.stage == current.stage:
                continue
            yield current._replace(left=row.at)
        elif current is not None:
            yield current
        current = Stay(row.deal_id, row.stage, row.at, None)
    if current is not None:
        yield current


def cycle_times(all_stays: Iterable[Stay], period: Period) -> dict[str, Summary]:
    """Days spent in each stage, over the stays that ended within ``period``."""
    days: dict[str, list[float]] = defaultdict(list)
    for stay in all_stays:
        if stay.left is not None and period.holds(stay.left):
            days[stay.stage].append((stay.left - stay.entered).total_seconds() / 86400)
    return {stage: Summary.of(values) for stage, values in days.items()}


def entries(all_stays: Iterable[Stay], period: Period) -> Counter[str]:
    """How many deals entered each stage within ``period`` (each deal once per stage)."""
    seen = {(stay.deal_id, stay.stage) for stay in all_stays if period.holds(stay.entered)}
    return Counter(stage for _, stage in seen)


def events(rows: Iterable[TimelineRow], key: str, period: Period) -> set[str]:
    """The deals whose timeline has an entry ``key`` within ``period``."""
    return {row.deal_id for row in rows if row.key == key and period.holds(row.at)}


# --- approvals ------------------------------------------------------------------------


class DecisionRow(NamedTuple):
    deal_id: str
    gate: str
    approver: str  # who decided (name)
    decision: str  # approved / rejected
    business_hours: float  # from request to decision, on the team's calendar


@dataclass
class GateFigures:
    decided: int = 0
    approved: int = 0
    rejected: int = 0
    turnaround: Summary = field(default_factory=Summary)

    @property
    def approval_rate(self) -> float | None:
        return self.approved / self.decided if self.decided else None

    @property
    def rejection_rate(self) -> float | None:
        return self.rejected / self.decided if self.decided else None


def approvals_by(decisions: Iterable[DecisionRow], by: str) -> dict[str, GateFigures]:
    """Decisions, approval and rejection counts and turnaround per gate or per approver
    (``by`` = "gate" or "approver")."""
    hours: dict[str, list[float]] = defaultdict(list)
    figures: dict[str, GateFigures] = defaultdict(GateFigures)
    for row in decisions:
        name = row.gate if by == "gate" else row.approver
        entry = figures[name]
        entry.decided += 1
        entry.approved += row.decision == "approved"
        entry.rejected += row.decision == "rejected"
        hours[name].append(row.business_hours)
    for name, entry in figures.items():
        entry.turnaround = Summary.of(hours[name])
    return dict(figures)


# --- time limits ----------------------------------------------------------------------


class Deadline(NamedTuple):
    """One piece of work with a time limit: done after ``taken`` business hours, or not
    done yet after ``taken`` hours so far."""

    responsibility: str
    limit_hours: float
    taken: float
    done: bool


@dataclass
class OnTime:
    on_time: int = 0
    late: int = 0

    @property
    def rate(self) -> float | None:
        total = self.on_time + self.late
        return self.on_time / total if total else None


def on_time(deadlines: Iterable[Deadline]) -> dict[str, OnTime]:
    """Per responsibility: work done within its limit, and work done late or still open
    past its limit. Open work still within its limit is not counted yet."""
    result: dict[str, OnTime] = defaultdict(OnTime)
    for item in deadlines:
        if item.taken > item.limit_hours:
            result[item.responsibility].late += 1
        elif item.done:
            result[item.responsibility].on_time += 1
    return dict(result)


# --- invoices and cash ----------------------------------------------------------------


class InvoiceRow(NamedTuple):
    number: str
    currency: str
    amount: Decimal
    issue_date: dt.date
    due_date: dt.date
    status: str
    paid: Decimal  # applied payments received up to the date the figure is for
    paid_on: dt.date | None = None  # the day it was paid in full


def bucket_of(due_date: dt.date, as_of: dt.date) -> str:
    late = (as_of - due_date).days
    if late <= 0:
        return AGING_BUCKETS[0]
    if late <= 30:
        return AGING_BUCKETS[1]
    if late <= 60:
        return AGING_BUCKETS[2]
    if late <= 90:
        return AGING_BUCKETS[3]
    return AGING_BUCKETS[4]


class Amounts(NamedTuple):
    items: int
    amount: Decimal


def aging(invoices: Iterable[InvoiceRow], as_of: dt.date) -> dict[str, dict[str, Amounts]]:
    """Open balances on ``as_of`` by days past due, per currency. ``paid`` must be what
    was received up to ``as_of``; invoices issued later or written off do not count."""
    table: dict[str, dict[str, Amounts]] = {bucket: {} for bucket in AGING_BUCKETS}
    for inv in invoices:
        balance = inv.amount - inv.paid
        if inv.status not in (*OPEN_INVOICE, "paid") or inv.issue_date > as_of or balance <= 0:
            continue
        cell = table[bucket_of(inv.due_date, as_of)]
        items, amount = cell.get(inv.currency, Amounts(0, ZERO))
        cell[inv.currency] = Amounts(items + 1, amount + balance)
    return table


def invoice_to_cash(invoices: Iterable[InvoiceRow]) -> Summary:
    """Days from issue to full payment, over invoices paid in full (DSO as the team
    measures it: how long a paid invoice took)."""
    return Summary.of(
        [float((inv.paid_on - inv.issue_date).days) for inv in invoices if inv.paid_on is not None]
    )


class Collection(NamedTuple):
    due: Decimal
    collected: Decimal

    @property
    def rate(self) -> float | None:
        return float(self.collected / self.due) if self.due else None


def collection_rate(due_invoices: Iterable[InvoiceRow]) -> dict[str, Collection]:
    """Per currency: of the amount that fell due, how much was collected (``paid`` up to
    the end of the period)."""
    due: dict[str, Decimal] = defaultdict(Decimal)
    collected: dict[str, Decimal] = defaultdict(Decimal)
    for inv in due_invoices:
        due[inv.currency] += inv.amount
        collected[inv.currency] += min(inv.paid, inv.amount)
    return {currency: Collection(due[currency], collected[currency]) for currency in due}


def totals(rows: Iterable[tuple[str, Decimal]]) -> dict[str, Amounts]:
    """Count and sum per currency of (currency, amount) rows."""
    result: dict[str, Amounts] = {}
    for currency, amount in rows:
        items, total = result.get(currency, Amounts(0, ZERO))
        result[currency] = Amounts(items + 1, total + amount)
    return result
