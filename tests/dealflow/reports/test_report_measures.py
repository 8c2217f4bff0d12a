"""The review measures on a history small enough to check by hand (tests/report_history.py
says what happened), written through the models into SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dealflow.infra.db import session_scope
from dealflow.reports.board import board
from dealflow.reports.measures import Amounts, quantile
from dealflow.reports.period import PeriodError, ReportPeriod, last_week, parse_period
from dealflow.reports.pipeline_figures import PAYMENT_ON_TIME, figures
from models.matrix import load_matrix
from models.settings import get_settings
from tests.report_history import seed_hand_history

WEEK = ReportPeriod(dt.date(2026, 3, 2), dt.date(2026, 3, 8), "Europe/Berlin")
MANAGER = "Sales manager approval (Sales manager)"
LEGAL = "Legal review (Legal counsel)"
SCREENING = "Lead screening and A/B/C grading (Sales representative)"


def approx(value: float | None) -> object:
    return pytest.approx(value, abs=1e-6)


def test_quantiles_interpolate_between_ranks() -> None:
    assert quantile([1, 2, 3, 10], 0.5) == 2.5
    assert quantile([1, 2, 3, 10], 0.9) == approx(7.9)
    assert quantile([4.0], 0.9) == 4.0
    assert quantile([], 0.5) is None


def test_the_week_measured_by_hand(database_url: str) -> None:
    seed_hand_history()
    matrix = load_matrix(get_settings().matrix_path)
    with session_scope() as session:
        week = figures(session, matrix, WEEK)
        before = figures(session, matrix, WEEK.previous)

    assert (week.won, week.handed_off) == (3, 1)  # D1, D2, D3 entered approval; D1 handed off
    assert week.won_amounts == {
        "EUR": Amounts(2, Decimal(30000)),
        "USD": Amounts(1, Decimal(5000)),
    }
    assert (before.won, before.handed_off) == (1, 1)  # D4
    assert dict(week.funnel) == {
        "submitted": 4,
        "lead_screening": 1,
        "needs_discovery": 1,
        "quote": 0,
        "approval:manager": 3,
        "approval:director": 0,
        "approval:legal": 1,
        "signing": 0,
        "signed": 0,
        "delivery_kickoff": 1,
        "invoiced": 0,
        "delivery": 0,
        "accepted": 0,
        "awaiting_payment": 1,
        "closed": 0,
    }

    manager, legal = week.gates["manager"], week.gates["legal"]
    assert (manager.decided, manager.approved, manager.rejected) == (2, 1, 1)
    assert manager.approval_rate == 0.5 and manager.rejection_rate == 0.5
    assert manager.turnaround.median == approx(12.0)  # 4 and 20 business hours
    assert manager.turnaround.p90 == approx(18.4)
    assert (legal.approved, legal.turnaround.median) == (1, approx(8.0))  # 3 on Mon, 5 on Tue
    assert week.approvers["Mara Keller"].turnaround.count == 2
    assert week.approvers["Lena Fischer"].approval_rate == 1.0
    assert before.gates["manager"].turnaround.median == approx(31.0)

    # D3 is still within its 24 hours at the week's end: not counted yet.
    assert (week.on_time[MANAGER].on_time, week.on_time[MANAGER].late) == (2, 0)
    assert week.on_time[LEGAL].rate == 1.0
    assert (week.on_time[SCREENING].on_time, week.on_time[SCREENING].late) == (0, 1)
    assert (before.on_time[MANAGER].on_time, before.on_time[MANAGER].late) == (0, 1)
    assert week.on_time[PAYMENT_ON_TIME].rate == 0.0  # I4 was due 03-04, paid 03-12

    cycle = dict(week.cycle)
    assert cycle["approval:manager"].count == 2
    assert cycle["approval:manager"].median == approx((4 / 24 + 52 / 24) / 2)
    assert cycle["approval:legal"].median == approx(1.0)
    assert cycle["lead_screening"].median == approx(52 / 24)
    assert cycle["submitted"].count == 4  # 1 hour for D1, none for the others
    assert cycle["submitted"].p90 == approx(0.7 / 24)

    assert week.issued == {"EUR": Amounts(1, Decimal(10000))}
    assert week.collected == {"EUR": Amounts(1, Decimal(3000)), "USD": Amounts(1, Decimal(500))}
    assert week.overdue["not due"] == {"EUR": Amounts(1, Decimal(10000))}
    assert week.overdue["1-30 days"] == {"EUR": Amounts(1, Decimal(4000))}  # I4 on 03-08
    assert week.overdue["61-90 days"] == {"EUR": Amounts(1, Decimal(2000))}  # I6, 67 days
    assert week.overdue["over 90 days"] == {}
    assert week.invoice_to_cash.median == 31.0  # I7: 02-02 to 03-05
    assert week.collection["EUR"].rate == approx(3000 / 7000)  # I4 fell due

    assert (week.reps["Sam"].won, week.reps["Sam"].handed_off, week.reps["Sam"].rejected) == (
        2,
        1,
        1,
    )
    assert week.reps["Sam"].won_amounts == {"EUR": Decimal(30000)}
    assert week.reps["Ann"].won == 1


def test_the_board_puts_overdue_work_first(database_url: str) -> None:
    seed_hand_history()
    matrix = load_matrix(get_settings().matrix_path)
    now = dt.datetime(2026, 3, 10, 10, tzinfo=dt.UTC)  # Tue 11:00 in Berlin
    with session_scope() as session:
        shown = board(session, matrix, now)

    assert shown.open_by_stage == [
        ("needs_discovery", 1),
        ("approval:manager", 1),
        ("awaiting_payment", 2),  # D1 and D4: handed off, not paid yet
    ]
    assert dict(shown.closed_by_outcome) == {"rejected": 1}
    first, second = shown.waiting
    # D3: Thu 8 + Fri 8 + Mon 8 + Tue 2 = 26 business hours of a 24-hour limit.
    assert (first.deal_id, first.waiting_on, first.left_hours) == (
        "D3",
        "Mara Keller",
        approx(-2.0),
    )
    assert first.overdue
    assert (second.deal_id, second.limit_hours) == ("D5", None)  # counted from the visit
    assert [(p.deal_id, p.confirm_by, p.days_late) for p in shown.late_plans] == [
        ("D1", dt.date(2026, 3, 2), 8)
    ]
    assert [(i.number, i.balance, i.level) for i in shown.invoices] == [
        ("I6", Decimal(2000), "second-reminder")
    ]


def test_periods_are_whole_local_days_and_bad_dates_are_refused() -> None:
    period = parse_period("2026-03-02", "2026-03-08", "Europe/Berlin")
    assert period.utc.start == dt.datetime(2026, 3, 1, 23, tzinfo=dt.UTC)
    assert period.utc.end == dt.datetime(2026, 3, 8, 23, tzinfo=dt.UTC)
    assert period.previous == ReportPeriod(
        dt.date(2026, 2, 23), dt.date(2026, 3, 1), "Europe/Berlin"
    )
    assert parse_period("2026-03-02", "2026-03-02", "UTC").days == 1
    with pytest.raises(PeriodError, match=r"--to \(2026-03-01\) is before --from \(2026-03-02\)"):
        parse_period("2026-03-02", "2026-03-01", "UTC")
    with pytest.raises(PeriodError, match=r"--from: not a date \(YYYY-MM-DD\): '2026-13-01'"):
        parse_period("2026-13-01", "2026-03-01", "UTC")
    with pytest.raises(PeriodError, match=r"--to: not a date"):
        parse_period("2026-03-01", "next week", "UTC")
    monday = last_week(dt.datetime(2026, 3, 9, 6, tzinfo=dt.UTC), "Europe/Berlin")
    assert (monday.first, monday.last) == (dt.date(2026, 3, 2), dt.date(2026, 3, 8))


def test_a_confirmed_delivery_plan_is_no_longer_late(database_url: str) -> None:
    from dealflow.answers.delivery_plan import confirm_plan

    seed_hand_history()
    matrix = load_matrix(get_settings().matrix_path)
    now = dt.datetime(2026, 3, 10, 10, tzinfo=dt.UTC)
    assert confirm_plan("D1", "omar.haddad@example.com", "Kickoff call on 9 March")
    assert not confirm_plan("D1", "omar.haddad@example.com"), "recorded once"
    with session_scope() as session:
        assert board(session, matrix, now).late_plans == []
