"""The pipeline board: the pipeline as it is now (deals per stage, who each waiting deal
waits on and how long it has left, late delivery plans, invoices being chased) beside the
review measures of the last 30 days."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from dealflow.reports import board_queries as bq
from dealflow.reports.period import ReportPeriod
from dealflow.reports.pipeline_figures import Clocks, Figures, figures, gate_limit_hours, ordered
from models import keys
from models.delivery_weeks import week_end, weeks_ended
from models.gates import approval_stage
from models.keys import ACCEPTANCE_WAIT, PAYMENT_WAIT, SIGNING_WAIT
from models.matrix import Matrix

# The wait a handed-off deal's run is suspended under, by the deal's stage.
PENDING_WAITS = {
    "signing": SIGNING_WAIT,
    "delivery": ACCEPTANCE_WAIT,
    "awaiting_payment": PAYMENT_WAIT,
}


@dataclass
class LatePlan:
    deal_id: str
    title: str
    confirm_by: dt.date
    days_late: int


@dataclass
class LateDuty:
    """A duty beside a deal's run past its day: archiving the signed contract, a week's
    progress report, answering the customer's complaint, the repurchase conversation."""

    deal_id: str
    title: str
    duty: str
    due: dt.date
    days_late: int


@dataclass
class Board:
    now: dt.datetime
    open_by_stage: list[tuple[str, int]]
    closed_by_outcome: list[tuple[str, int]]
    waiting: list[bq.WaitingDeal]
    late_plans: list[LatePlan]
    invoices: list[bq.DunningRow]
    late_duties: list[LateDuty]
    recent: Figures  # the last 30 days


def limit_for_stage(matrix: Matrix, stage: str) -> float | None:
    """The time limit of a deal waiting at ``stage``, in business hours, if it has one."""
    for gate in matrix.gates:
        if stage == approval_stage(gate.name):
            return gate_limit_hours(gate)
    rule = next((s for s in matrix.stages if s.name == stage), None)
    if rule is not None and rule.limit_from == "opened":
        return rule.limit_business_hours
    return None


def waits_on(matrix: Matrix, deal: bq.WaitingDeal) -> str:
    """Whom ``deal`` waits on; after the approvals, also what for: the sales rep to record
    the signed contract, the delivery manager to record the customer's acceptance, then
    finance for the customer's payment."""
    wait = PENDING_WAITS.get(deal.stage)
    if wait == SIGNING_WAIT:
        return f"{deal.waiting_on} (sales rep), to record the signed contract"
    if wait == ACCEPTANCE_WAIT:
        role = matrix.role_title(matrix.handoff.delivery_role)
        return f"{deal.waiting_on} ({role}), to record the customer's acceptance"
    if wait == PAYMENT_WAIT:
        role = matrix.role_title(matrix.handoff.finance_role)
        return f"{deal.waiting_on} ({role}), for the customer's payment"
    return deal.waiting_on


def most_urgent_first(waiting: Iterable[bq.WaitingDeal]) -> list[bq.WaitingDeal]:
    """Overdue first (furthest past its limit first), then least time left, then the
    ones without a limit, longest waiting first."""
    return sorted(
        waiting,
        key=lambda w: (
            w.left_hours is None,
            w.left_hours if w.left_hours is not None else 0.0,
            w.since,
        ),
    )


def board(session: Session, matrix: Matrix, now: dt.datetime, window_days: int = 30) -> Board:
    clocks = Clocks(matrix)
    counts = bq.stage_counts(session)
    open_by_stage: dict[str, int] = defaultdict(int)
    closed: dict[str, int] = defaultdict(int)
    for stage, outcome, count in counts:
        if outcome is not None and not bq.is_open(outcome):
            closed[outcome] += count
        else:  # handed-off deals too, until they are paid
            open_by_stage[stage] += count
    waiting = [
        row._replace(
            waiting_on=waits_on(matrix, row),
            limit_hours=limit_for_stage(matrix, row.stage),
            elapsed_hours=clocks[row.team].hours_between(row.since, now),
        )
        for row in bq.waiting(session)
    ]
    today = now.astimezone(ZoneInfo(matrix.reports.timezone)).date()
    window = ReportPeriod(
        today - dt.timedelta(days=window_days - 1), today, matrix.reports.timezone
    )
    return Board(
        now=now,
        open_by_stage=[(s, open_by_stage[s]) for s in ordered(matrix, set(open_by_stage))],
        closed_by_outcome=sorted(closed.items()),
        waiting=most_urgent_first(waiting),
        late_plans=_late_plans(session, matrix, clocks, today),
        invoices=bq.chased_or_overdue(session, today),
        late_duties=late_duties(session, matrix, now),
        recent=figures(session, matrix, window),
    )


def _late_plans(session: Session, matrix: Matrix, clocks: Clocks, today: dt.date) -> list[LatePlan]:
    """Delivery plans not confirmed by their date (so many business days before the
    delivery starts, on the team's calendar), latest first."""
    plans = []
    for plan in bq.unconfirmed_plans(session, today):
        try:
            start = dt.date.fromisoformat(plan.delivery_start)
        except (TypeError, ValueError):
            continue
        calendar = clocks[plan.team].calendar
        confirm_by = calendar.add_business_days(
            start, -matrix.handoff.plan_confirmation_business_days
        )
        if confirm_by < today:
            plans.append(LatePlan(plan.deal_id, plan.title, confirm_by, (today - confirm_by).days))
    plans.sort(key=lambda p: -p.days_late)
    return plans


def late_duties(session: Session, matrix: Matrix, now: dt.datetime) -> list[LateDuty]:
    """The duties beside the runs past their day at ``now``, latest first: each as the
    sla-sweep judges it (the team's calendar), so the board lists what it follows up."""
    rows = bq.open_duties(session)
    deliveries = [row.deal_id for row in rows if row.key == keys.KICKOFF]
    reported = bq.progress_reported(session, deliveries)
    late: list[LateDuty] = []
    for row in rows:
        zone = matrix.calendar(row.team).zone
        due = _due(matrix, row, reported, now)
        if due is None or due >= now:
            continue
        duty = _DUTY_NAMES[row.key] if row.key in _DUTY_NAMES else _progress_duty(matrix, row, now)
        days = (now.astimezone(zone).date() - due.astimezone(zone).date()).days
        late.append(LateDuty(row.deal_id, row.title, duty, due.astimezone(zone).date(), days))
    late.sort(key=lambda d: (-d.days_late, d.deal_id))
    return late


_DUTY_NAMES = {
    keys.ARCHIVE_REQUESTED: "Archive the signed contract",
    keys.COMPLAINT_OPENED: "Answer the customer's complaint",
    keys.REPURCHASE_REQUESTED: "Record the repurchase conversation",
}


def _due(
    matrix: Matrix, row: bq.DutyRow, reported: set[tuple[str, str]], now: dt.datetime
) -> dt.datetime | None:
    """When the open duty was due (None: none is due yet, or the matrix asks for none)."""
    handoff = matrix.handoff
    zone = matrix.calendar(row.team).zone
    if row.key == keys.ARCHIVE_REQUESTED:  # by the end of its day
        day = matrix.archive_due(row.team, row.at)
        return dt.datetime.combine(day, dt.time(23, 59, 59), zone)
    if row.key == keys.COMPLAINT_OPENED:
        return matrix.complaint_due(row.team, row.at) if handoff.success_role else None
    if row.key == keys.REPURCHASE_REQUESTED:
        return row.at + dt.timedelta(days=handoff.repurchase_remind_days)
    every = handoff.progress_every_days
    week = weeks_ended(row.at, now, every) if every else 0
    if every is None or week == 0 or (row.deal_id, keys.progress_report(week)) in reported:
        return None
    return week_end(row.at, week, every)


def _progress_duty(matrix: Matrix, row: bq.DutyRow, now: dt.datetime) -> str:
    every = matrix.handoff.progress_every_days or 1
    return f"Progress report for delivery week {weeks_ended(row.at, now, every)}"
