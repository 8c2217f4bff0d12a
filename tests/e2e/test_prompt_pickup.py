"""A `dealflow worker` takes a run of its pool as soon as the run is scheduled, not at its
next poll: with the poll set to five minutes, a run created after the worker's first poll
is still picked up within seconds (the Prefect server's event stream tells the worker).
The run's deployment has no code to run: only the pick-up (Scheduled -> Pending) is
watched, on a pool of its own beside the stack's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults import cold_worker, pool_of_its_own
from tests.support import prefect_http

pytestmark = pytest.mark.stack

POLL_SECONDS = 300
PICK_UP_WITHIN_SECONDS = 20.0


@pytest.fixture
def pool(stack: Any) -> Iterator[str]:
    with pool_of_its_own(stack, "prompt") as name:
        yield name


@pytest.fixture
def worker(stack: Any, pool: str, tmp_path: Path) -> Iterator[Path]:
    with cold_worker(
        stack, pool, tmp_path / "worker.log", PREFECT_WORKER_QUERY_SECONDS=str(POLL_SECONDS)
    ) as log:
        yield log


def test_a_run_scheduled_after_the_workers_poll_starts_within_seconds(
    stack: Any, pool: str, worker: Path
) -> None:
    with prefect_http() as api:
        flow = api.post("flows/", json={"name": "prompt-pickup-check"}).json()
        deployment = api.post(
            "deployments/",
            json={
                "name": pool,
                "flow_id": flow["id"],
                "work_pool_name": pool,
                "entrypoint": "no_such_module.py:nothing",
            },
        )
        deployment.raise_for_status()
        time.sleep(2)  # after the worker's first poll, well before its next
        created = time.monotonic()
        made = api.post(f"deployments/{deployment.json()['id']}/create_flow_run", json={})
        assert made.status_code == 201, made.text
        run = made.json()
        while True:
            state = api.get(f"flow_runs/{run['id']}").json()["state"]["type"]
            if state != "SCHEDULED":
                break
            waited = time.monotonic() - created
            assert waited < PICK_UP_WITHIN_SECONDS, (
                f"still Scheduled after {waited:.0f} s (the poll is every {POLL_SECONDS} s):\n"
                + worker.read_text(errors="replace")[-3000:]
            )
            time.sleep(0.2)
        api.delete(f"deployments/{deployment.json()['id']}")
    assert state in {"PENDING", "RUNNING", "CRASHED", "FAILED"}, state
