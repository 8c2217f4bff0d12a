"""Scheduled work happens by itself: Prefect's scheduler creates the runs, and they run.

Every test elsewhere starts its flows by hand, which proves nothing about schedules: a
dependency that breaks Prefect's scheduler service (SQLAlchemy 2.1 under Prefect 3.8.8
did) leaves reminders, dunning and reports undone while every other test passes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from dealflow.stack.deploy import scheduled_deployments
from tests.support import prefect_http

pytestmark = pytest.mark.stack  # on the production path too

SHORT_INTERVAL = 10.0  # seconds; what an operator would never set, to see it fire soon


def deployment_ids() -> dict[str, str]:
    found = prefect_http().post("deployments/filter", json={"limit": 200}).json()
    return {d["name"]: d["id"] for d in found}


def runs_of(deployment_id: str, **state_filter: Any) -> list[dict[str, Any]]:
    criteria: dict[str, Any] = {"deployment_id": {"any_": [deployment_id]}, **state_filter}
    response = prefect_http().post("flow_runs/filter", json={"flow_runs": criteria, "limit": 200})
    assert response.status_code == 200, response.text
    return list(response.json())


def test_every_scheduled_deployment_has_its_next_runs(stack: Any) -> None:
    ids = deployment_ids()
    assert set(scheduled_deployments()) == {
        "sla-sweep",
        "payment-check",
        "pipeline-report",
        "weekly-report",
    }
    for name in scheduled_deployments():
        upcoming = runs_of(ids[name], state={"type": {"any_": ["SCHEDULED"]}})
        # Runs started by hand (`dealflow prefect deployment run`) may wait beside them.
        assert any(run["auto_scheduled"] for run in upcoming), f"{name} has no scheduled run"


def test_a_short_schedule_fires_and_its_run_completes(stack: Any) -> None:
    sweep = deployment_ids()["sla-sweep"]
    before = {run["id"] for run in runs_of(sweep)}
    added = prefect_http().post(
        f"deployments/{sweep}/schedules",
        json=[{"schedule": {"interval": SHORT_INTERVAL}, "active": True}],
    )
    assert added.status_code == 201, added.text
    schedule_id = added.json()[0]["id"]
    try:
        deadline = time.monotonic() + 180
        done: list[dict[str, Any]] = []
        while not done:
            assert time.monotonic() < deadline, (
                "no run of the short schedule completed within 180 s; Prefect server log:\n"
                + stack.server_errors()
            )
            time.sleep(1)
            done = [
                run
                for run in runs_of(sweep, state={"type": {"any_": ["COMPLETED"]}})
                if run["id"] not in before and run["auto_scheduled"]
            ]
        assert done[0]["name"], "the scheduler named the run"
    finally:
        prefect_http().delete(f"deployments/{sweep}/schedules/{schedule_id}")
