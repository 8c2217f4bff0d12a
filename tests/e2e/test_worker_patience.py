"""A `dealflow worker` that cannot start a run because the Prefect server is unreachable
starts it once the server answers, instead of reporting it Crashed.

Before a run's process starts, Prefect's worker connects to the server's event stream; a
server killed at that moment failed the submission and the run ended Crashed, its deal
waiting for the next sweep (seen in CI: tests/e2e/test_outages.py, the server killed
mid-click). Here a proxy in front of the server closes those connections unanswered for a
while, as a dying server does, and lets them through again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from dealflow.stack.config import prefect_env
from harness.runs import run_state, wait_for_state
from models.settings import PROJECT_ROOT
from tests.faults import ApiProxy

pytestmark = pytest.mark.stack

EVENT_STREAM = b"GET /api/events/in"


@pytest.fixture
def proxy(stack: Any) -> Iterator[ApiProxy]:
    port = urlsplit(stack.config.prefect_api_url).port
    assert port is not None
    proxy = ApiProxy(port)
    yield proxy
    proxy.close()


@pytest.fixture
def pool(stack: Any) -> Iterator[str]:
    name = f"patience-{uuid.uuid4().hex[:8]}"
    with stack.api() as api:
        api.post("work_pools/", json={"name": name, "type": "process"}).raise_for_status()
        yield name
        api.delete(f"work_pools/{name}")


@pytest.fixture
def worker_log(stack: Any, pool: str, proxy: ApiProxy, tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        **prefect_env(stack.config),
        "PREFECT_API_URL": f"http://127.0.0.1:{proxy.port}/api",
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


def sweep_deployment_on(stack: Any, pool: str) -> str:
    """A copy of the stack's sla-sweep deployment on ``pool``: a real flow, quickly done."""
    with stack.api() as api:
        sweep = api.get("deployments/name/sla-sweep/sla-sweep").json()
        copy = {
            key: sweep[key]
            for key in ("flow_id", "entrypoint", "path", "pull_steps", "job_variables")
        }
        created = api.post("deployments/", json={**copy, "name": pool, "work_pool_name": pool})
        created.raise_for_status()
        return str(created.json()["id"])


def test_a_run_whose_start_finds_the_server_unreachable_starts_when_it_answers(
    stack: Any, pool: str, proxy: ApiProxy, worker_log: Path
) -> None:
    deployment = sweep_deployment_on(stack, pool)
    proxy.refusing = EVENT_STREAM
    with stack.api() as api:
        run = api.post(f"deployments/{deployment}/create_flow_run", json={}).json()
    run_id = run["id"]
    said = f"could not start flow run {run_id}: the Prefect server is unreachable"
    deadline = time.monotonic() + 60
    while said not in worker_log.read_text(errors="replace"):
        assert time.monotonic() < deadline, worker_log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    assert run_state(run_id)[0] != "CRASHED"
    proxy.refusing = None

    wait_for_state(run_id, "COMPLETED", timeout=120)
    with stack.api() as api:
        states = api.get("flow_run_states/", params={"flow_run_id": run_id}).json()
        api.delete(f"deployments/{deployment}")
    assert "CRASHED" not in [state["type"] for state in states]
    assert proxy.refused >= 1
