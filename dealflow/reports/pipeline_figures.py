"""The review measures of one period: the queries' rows put through the measures, with
the matrix's calendars and time limits. The pipeline board (``board``) shows those of
the last 30 days beside the pipeline as it is now."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.orm import Session

from dealflow.reports import measures as m
from dealflow.reports import queries as q
from dealflow.reports.period import ReportPeriod
from dealflow.reports.working_hours import WorkingHours
from models import keys
from models.business_time import BusinessCalendar
from models.delivery_weeks import week_end, weeks_ended
from models.gates import approval_stage
from models.matrix import Gate, Matrix

PAYMENT_ON_TIME = "Invoice paid by its due date (finance follows up)"


class Clocks:
    """Business-hour counting per team, on each team's calendar from the matrix."""

    def __init__(self, matrix: Matrix) -> None:
        self.matrix = matrix
        self._by_team: dict[str, WorkingHours] = {}

    def __getitem__(self, team: str) -> WorkingHours:
        clock = self._by_team.get(team)
        if clock is None:
            calendar = (
                self.matrix.teams[team].calendar()
                if team in self.matrix.teams
                else BusinessCalendar()
            )
            clock = self._by_team[team] = WorkingHours(calendar)
        return clock


def gate_limit_hours(gate: Gate) -> float | None:
    """A gate's time limit: when it escalates, else its last reminder."""
    if gate.escalate_after_hours is not None:
        return gate.escalate_after_hours
    return max(gate.remind_after_hours) if gate.remind_after_hours else None


def stage_order(matrix: Matrix) -> list[str]:
    """The stages a deal passes, in the order it passes them."""
    early = [
        s.name for s in matrix.stages if s.name in ("lead_screening", "needs_discovery", "quote")
    ]
    return [
        "submitted",
        *early,
        *(approval_stage(g.name) for g in matrix.gates),
        "signing",  # waiting for the signed contract
        "signed",
        "delivery_kickoff",
        "invoiced",
        "delivery",  # waiting for the customer's acceptance
        "accepted",
        "awaiting_payment",
        "closed",
    ]


def ordered(matrix: Matrix, stages: set[str] | list[str]) -> list[str]:
    known = stage_order(matrix)
    return sorted(stages, key=lambda s: (known.index(s) if s in known else len(known), s))


@dataclass
class RepFigures:
    won: int = 0
    handed_off: int = 0
    rejected: int = 0
    lost: int = 0
    won_amounts: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))


@dataclass
class Figures:
    period: ReportPeriod
    won: int
    won_amounts: dict[str, m.Amounts]
    handed_off: int
    funnel: list[tuple[str, int]]
    gates: dict[str, m.GateFigures]
    approvers: dict[str, m.GateFigures]
    cycle: list[tuple[str, m.Summary]]
    on_time: dict[str, m.OnTime]
    issued: dict[str, m.Amounts]
    collected: dict[str, m.Amounts]
    overdue: dict[str, dict[str, m.Amounts]]
    invoice_to_cash: m.Summary
    collection: dict[str, m.Collection]
    reps: dict[str, RepFigures]
    satisfaction: list[int] = field(default_factory=list)  # the period's survey scores


def figures(session: Session, matrix: Matrix, period: ReportPeriod) -> Figures:
    """Every review measure of ``period``."""
    utc = period.utc
    clocks = Clocks(matrix)
    facts = q.deal_facts(session, utc)
    rows = list(q.timelines(session, utc))
    all_stays = list(m.stays(rows))
    won = m.events(rows, "route", utc)
    handed_off = m.events(rows, "kickoff", utc)
    reps = _rep_figures(facts, won, handed_off, all_stays, utc)
    entered = m.entries(all_stays, utc)
    gates = q.gates_touching(session, utc)
    decisions = _decisions(clocks, gates, utc)
    due = q.falling_due(session, period.first, period.last)
    deadlines = [
        *_gate_deadlines(matrix, clocks, gates, utc),
        *_stage_deadlines(matrix, clocks, rows, facts, utc),
        *_payment_deadlines(due, period),
        *_archive_deadlines(matrix, rows, facts, utc),
        *_progress_deadlines(matrix, q.deliveries(session, utc), utc),
        *_complaint_deadlines(matrix, rows, facts, utc),
    ]
    cycle = m.cycle_times(all_stays, utc)
    return Figures(
        period=period,
        won=len(won),
        won_amounts=m.totals((facts[d].currency, facts[d].amount) for d in won),
        handed_off=len(handed_off),
        funnel=[(stage, entered.get(stage, 0)) for stage in stage_order(matrix)],
        gates=m.approvals_by(decisions, "gate"),
        approvers=m.approvals_by(decisions, "approver"),
        cycle=[(stage, cycle[stage]) for stage in ordered(matrix, set(cycle))],
        on_time=m.on_time(deadlines),
        issued={
            c: m.Amounts(n, total) for c, n, total in q.issued(session, period.first, period.last)
        },
        collected={
            c: m.Amounts(n, total)
            for c, n, total in q.collected(session, period.first, period.last)
        },
        overdue=m.aging(q.receivables(session, period.last), period.last),
        invoice_to_cash=m.invoice_to_cash(q.paid_in(session, utc)),
        collection=m.collection_rate(due),
        reps=reps,
        satisfaction=q.survey_scores(session, utc),
    )


def _rep_figures(
    facts: dict[str, q.DealFacts],
    won: set[str],
    handed_off: set[str],
    all_stays: list[m.Stay],
    period: m.Period,
) -> dict[str, RepFigures]:
    """Per sales rep: deals won (and their amounts), handed off, rejected and lost."""
    reps: dict[str, RepFigures] = defaultdict(RepFigures)
    for deal_id in won:
        rep = reps[facts[deal_id].sales_rep]
        rep.won += 1
        rep.won_amounts[facts[deal_id].currency] += facts[deal_id].amount
    for deal_id in handed_off:
        reps[facts[deal_id].sales_rep].handed_off += 1
    for stay in all_stays:
        if stay.stage in ("rejected", "lost") and period.holds(stay.entered):
            rep = reps[facts[stay.deal_id].sales_rep]
            rep.rejected += stay.stage == "rejected"
            rep.lost += stay.stage == "lost"
    return dict(reps)


def _decisions(clocks: Clocks, gates: list[q.GateRow], period: m.Period) -> list[m.DecisionRow]:
    """The gates decided within ``period``, with their turnaround in business hours."""
    return [
        m.DecisionRow(
            g.deal_id,
            g.gate,
            g.decided_by or "?",
            g.decision or "",
            clocks[g.team].hours_between(g.requested_at, g.decided_at),
        )
        for g in gates
        if g.decided_at is not None and period.holds(g.decided_at)
    ]


def _payment_deadlines(due: list[m.InvoiceRow], period: ReportPeriod) -> list[m.Deadline]:
    """Invoices that fell due in ``period``, each to be paid by its due date: the days
    from that date to its payment (to the day after the period, when still unpaid)."""
    return [
        m.Deadline(
            PAYMENT_ON_TIME,
            0,
            float(
                max(0, ((inv.paid_on or period.last + dt.timedelta(days=1)) - inv.due_date).days)
            ),
            inv.paid_on is not None,
        )
        for inv in due
    ]


def _archive_deadlines(
    matrix: Matrix, rows: list[m.TimelineRow], facts: dict[str, q.DealFacts], period: m.Period
) -> list[m.Deadline]:
    """Signed contracts administration was asked to archive within the period, each due
    by its business day on the team's calendar: the days past that day it took (to the
    period's end, when still not archived)."""
    role = matrix.handoff.archive_role
    if role is None:
        return []
    archived = {row.deal_id: row.at for row in rows if row.key == keys.ARCHIVED}
    who = f"Signed contract archived ({matrix.role_title(role)})"
    result = []
    for row in rows:
        if row.key != keys.ARCHIVE_REQUESTED or not period.holds(row.at):
            continue
        team = facts[row.deal_id].team
        due = matrix.archive_due(team, row.at)
        done = archived.get(row.deal_id)
        until = (done or period.end).astimezone(matrix.calendar(team).zone).date()
        result.append(m.Deadline(who, 0, float(max(0, (until - due).days)), done is not None))
    return result


def _progress_deadlines(
    matrix: Matrix, rows: list[m.TimelineRow], period: m.Period
) -> list[m.Deadline]:
    """The delivery weeks that ended within the period while delivery ran: each on time
    with its progress report, late without."""
    every = matrix.handoff.progress_every_days
    if every is None:
        return []
    kickoffs: dict[str, dt.datetime] = {}
    ended: dict[str, dt.datetime] = {}
    reported: set[tuple[str, str]] = set()
    for row in rows:
        if row.key == keys.KICKOFF:
            kickoffs.setdefault(row.deal_id, row.at)
        elif row.key in (keys.ACCEPTED, keys.CLOSED) or row.stage in ("rejected", "lost"):
            ended.setdefault(row.deal_id, row.at)
        reported.add((row.deal_id, row.key))
    who = f"Weekly progress report ({matrix.roles.get('sales_rep', 'Sales representative')})"
    result = []
    for deal_id, kickoff in kickoffs.items():
        last = min(ended.get(deal_id, period.end), period.end)
        for week in range(1, weeks_ended(kickoff, last, every) + 1):
            if not period.holds(week_end(kickoff, week, every)):
                continue
            done = (deal_id, keys.progress_report(week)) in reported
            result.append(m.Deadline(who, 0, 0.0 if done else 1.0, done))
    return result


def _complaint_deadlines(
    matrix: Matrix, rows: list[m.TimelineRow], facts: dict[str, q.DealFacts], period: m.Period
) -> list[m.Deadline]:
    """Customers' complaints opened within the period, each to be answered within the
    matrix's business hours: on time, late, or still open past its time."""
    role = matrix.handoff.success_role
    if role is None:
        return []
    answered = {row.deal_id: row.at for row in rows if row.key == keys.COMPLAINT_ANSWERED}
    who = f"Complaint answered in time ({matrix.role_title(role)})"
    result = []
    for row in rows:
        if row.key != keys.COMPLAINT_OPENED or not period.holds(row.at):
            continue
        due = matrix.complaint_due(facts[row.deal_id].team, row.at)
        done = answered.get(row.deal_id)
        late = (done or period.end) > due
        result.append(m.Deadline(who, 0, 1.0 if late else 0.0, done is not None))
    return result


def _gate_deadlines(
    matrix: Matrix, clocks: Clocks, gates: list[q.GateRow], period: m.Period
) -> list[m.Deadline]:
    by_name = {g.name: g for g in matrix.gates}
    result = []
    for row in gates:
        gate = by_name.get(row.gate)
        limit = gate_limit_hours(gate) if gate else None
        if gate is None or limit is None or not period.holds(row.requested_at):
            continue
        until = row.decided_at or period.end
        taken = clocks[row.team].hours_between(row.requested_at, until)
        who = f"{gate.title} ({matrix.role_title(gate.role)})"
        result.append(m.Deadline(who, limit, taken, row.decided_at is not None))
    return result


def _stage_deadlines(
    matrix: Matrix,
    clocks: Clocks,
    rows: list[m.TimelineRow],
    facts: dict[str, q.DealFacts],
    period: m.Period,
) -> list[m.Deadline]:
    """Stages whose limit counts from their opening, opened within the period."""
    limited = {
        s.name: s for s in matrix.stages if s.limit_from == "opened" and s.limit_business_hours
    }
    opened: dict[tuple[str, str], dt.datetime] = {}
    reported: dict[tuple[str, str], dt.datetime] = {}
    for row in rows:
        event = keys.stage_event(row.key)
        if event is not None and event[0] in limited:
            stage_name, what = event
            target = opened if what == "opened" else reported if what == "reported" else None
            if target is not None:
                target[(row.deal_id, stage_name)] = row.at
    result = []
    for (deal_id, name), at in opened.items():
        if not period.holds(at):
            continue
        stage = limited[name]
        done = reported.get((deal_id, name))
        taken = clocks[facts[deal_id].team].hours_between(at, done or period.end)
        roles = ", ".join(matrix.role_title(r) for r in stage.responsible)
        assert stage.limit_business_hours is not None
        result.append(
            m.Deadline(
                f"{stage.title} ({roles})", stage.limit_business_hours, taken, done is not None
            )
        )
    return result
