"""A `dealflow worker` takes a run of its pool as soon as the run is scheduled, not at its
next poll: with the poll set to five minutes, a run created after the worker's first poll
is still picked up within seconds (the Prefect server's event stream tells the worker).
The run's deployment has no code to run: only the pick-up (Scheduled -> Pending) is
watched, on a pool of its own beside the stack's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dealflow.stack.config import prefect_env
from models.settings import PROJECT_ROOT

pytestmark = pytest.mark.stack

POLL_SECONDS = 300
PICK_UP_WITHIN_SECONDS = 20.0


@pytest.fixture
def pool(stack: Any) -> Iterator[str]:
    name = f"prompt-{uuid.uuid4().hex[:8]}"
    with stack.api() as api:
        api.post("work_pools/", json={"name": name, "type": "process"}).raise_for_status()
        yield name
        api.delete(f"work_pools/{name}")


@pytest.fixture
def worker(stack: Any, pool: str, tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        **prefect_env(stack.config),
        "PREFECT_WORKER_QUERY_SECONDS": str(POLL_SECONDS),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dealflow", "worker", "--pool", pool, "--cold"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while "started!" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        yield log
    finally:
        process.terminate()
        process.wait(30)


def test_a_run_scheduled_after_the_workers_poll_starts_within_seconds(
    stack: Any, pool: str, worker: Path
) -> None:
    with stack.api() as api:
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
        run = api.post(f"deployments/{deployment.json()['id']}/create_flow_run", json={}).json()
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
