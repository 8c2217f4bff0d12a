"""Scheduled and on-demand runs are named for what they check and when, not
``noble-mule``: the flow's name and the day (or the minute, for the flows that run
several times a day) of their ``now`` parameter, else of the current time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.flows import Flow, load_flow_from_entrypoint
from prefect.runtime import flow_run

import flows.run_names
from flows.deal_handoff import deal_handoff
from flows.payment_check import payment_check
from flows.pipeline_report import pipeline_report
from flows.run_names import checked_at, day_name, minute_name, weekly_report_name
from flows.sla_sweep import sla_sweep
from flows.weekly_report import weekly_report
from models.settings import PROJECT_ROOT

MORNING = dt.datetime(2026, 12, 2, 7, 15, 42, tzinfo=dt.UTC)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    """The current time, as the run names read it."""
    now = dt.datetime(2026, 12, 5, 1, 40, 9, tzinfo=dt.UTC)
    monkeypatch.setattr(flows.run_names, "utcnow", lambda: now)
    return now


def test_a_run_checks_at_its_now_parameter_in_utc_else_at_the_current_time(
    clock: dt.datetime,
) -> None:
    assert checked_at({"now": MORNING}) == MORNING
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert checked_at({"now": dt.datetime(2026, 12, 2, 0, 30, tzinfo=berlin)}) == dt.datetime(
        2026, 12, 1, 23, 30, tzinfo=dt.UTC
    )
    # A deployment's run may hand the parameter over as it was sent: ISO 8601 text.
    assert checked_at({"now": "2026-12-02T07:15:42+00:00"}) == MORNING
    assert checked_at({"now": None}) == clock
    assert checked_at({}) == clock


def test_names_by_the_day_or_by_the_minute(clock: dt.datetime) -> None:
    assert day_name("payment-check", {"now": MORNING}) == "payment-check-2026-12-02"
    assert minute_name("sla-sweep", {"now": MORNING}) == "sla-sweep-2026-12-02T07:15Z"
    assert day_name("payment-check", {}) == "payment-check-2026-12-05"
    assert minute_name("sla-sweep", {"now": None}) == "sla-sweep-2026-12-05T01:40Z"


def test_a_weekly_report_for_a_given_period_is_named_for_it(clock: dt.datetime) -> None:
    first, last = dt.date(2026, 3, 2), dt.date(2026, 3, 8)
    assert weekly_report_name({"first": first, "last": last}) == (
        "weekly-report-2026-03-02-to-2026-03-08"
    )
    assert weekly_report_name({"first": "2026-03-02", "last": "2026-03-08", "now": None}) == (
        "weekly-report-2026-03-02-to-2026-03-08"
    )
    assert weekly_report_name({"now": MORNING}) == "weekly-report-2026-12-02"
    assert weekly_report_name({"first": None, "last": None}) == "weekly-report-2026-12-05"


@pytest.mark.parametrize(
    ("flow", "parameters", "name"),
    [
        (payment_check, {"now": MORNING}, "payment-check-2026-12-02"),
        (payment_check, {"now": None}, "payment-check-2026-12-05"),
        (sla_sweep, {"now": MORNING}, "sla-sweep-2026-12-02T07:15Z"),
        (sla_sweep, {}, "sla-sweep-2026-12-05T01:40Z"),
        (
            pipeline_report,
            {"now": "2026-12-02T07:05:00+00:00"},
            "pipeline-report-2026-12-02T07:05Z",
        ),
        (pipeline_report, {"now": None}, "pipeline-report-2026-12-05T01:40Z"),
        (weekly_report, {"first": None, "last": None, "now": None}, "weekly-report-2026-12-05"),
        (
            weekly_report,
            {"first": dt.date(2026, 3, 2), "last": dt.date(2026, 3, 8), "now": None},
            "weekly-report-2026-03-02-to-2026-03-08",
        ),
        # A deal's run, and the run of its revision 2 (a rejected deal submitted again);
        # runs started before revisions existed have no ``revision`` parameter.
        (deal_handoff, {"deal_id": "ACME-2026-014"}, "deal-ACME-2026-014"),
        (deal_handoff, {"deal_id": "ACME-2026-014", "revision": 1}, "deal-ACME-2026-014"),
        (deal_handoff, {"deal_id": "ACME-2026-014", "revision": 2}, "deal-ACME-2026-014-r2"),
    ],
)
def test_each_flow_names_its_run_from_the_run_parameters(
    flow: Flow[Any, Any],
    parameters: dict[str, Any],
    name: str,
    clock: dt.datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Prefect calls ``flow_run_name`` inside the run, where ``prefect.runtime`` has the
    run's parameters."""
    monkeypatch.setattr(flow_run, "parameters", parameters, raising=False)
    assert callable(flow.flow_run_name)
    assert flow.flow_run_name() == name


def test_every_deployment_loads_with_a_readable_run_name(clock: dt.datetime) -> None:
    declared = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"]
    names: dict[str, Any] = {}
    for deployment in declared:
        path, function = deployment["entrypoint"].split(":")
        assert Path(PROJECT_ROOT / path).is_file()
        loaded: Flow[Any, Any] = load_flow_from_entrypoint(f"{PROJECT_ROOT / path}:{function}")
        assert loaded.name == deployment["name"]
        names[loaded.name] = loaded.flow_run_name
    assert sorted(names) == [
        "deal-handoff",
        "payment-check",
        "pipeline-report",
        "sla-sweep",
        "weekly-report",
    ]
    assert all(callable(name) for name in names.values())
