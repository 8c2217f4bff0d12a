"""A `dealflow worker` that cannot start a run because the Prefect server is unreachable
starts it once the server answers, instead of reporting it Crashed.

Before a run's process starts, Prefect's worker connects to the server's event stream; a
server killed at that moment failed the submission and the run ended Crashed, its deal
waiting for the next sweep (seen in CI: tests/e2e/test_outages.py, the server killed
mid-click). Here a proxy in front of the server closes those connections unanswered for a
while, as a dying server does, and lets them through again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from harness.runs import run_state, wait_for_state
from tests.faults import ApiProxy, cold_worker, pool_of_its_own
from tests.support import prefect_http

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
    with pool_of_its_own(stack, "patience") as name:
        yield name


@pytest.fixture
def worker_log(stack: Any, pool: str, proxy: ApiProxy, tmp_path: Path) -> Iterator[Path]:
    proxied = f"http://127.0.0.1:{proxy.port}/api"
    with cold_worker(stack, pool, tmp_path / "worker.log", PREFECT_API_URL=proxied) as log:
        yield log


def quick_deployment_on(stack: Any, pool: str) -> str:
    """A deployment of tests/e2e/quick_flow.py on ``pool``, loaded from this checkout as
    the stack's own deployments are."""
    with prefect_http() as api:
        sweep = api.get("deployments/name/sla-sweep/sla-sweep").json()
        flow = api.post("flows/", json={"name": "quick-check"}).json()
        created = api.post(
            "deployments/",
            json={
                **{key: sweep[key] for key in ("path", "pull_steps", "job_variables")},
                "name": pool,
                "flow_id": flow["id"],
                "work_pool_name": pool,
                "entrypoint": "tests/e2e/quick_flow.py:quick_check",
            },
        )
        created.raise_for_status()
        return str(created.json()["id"])


def test_a_run_whose_start_finds_the_server_unreachable_starts_when_it_answers(
    stack: Any, pool: str, proxy: ApiProxy, worker_log: Path
) -> None:
    deployment = quick_deployment_on(stack, pool)
    proxy.refusing = EVENT_STREAM
    with prefect_http() as api:
        created = api.post(f"deployments/{deployment}/create_flow_run", json={})
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    said = f"could not start flow run {run_id}: the Prefect server is unreachable"
    deadline = time.monotonic() + 60
    while said not in worker_log.read_text(errors="replace"):
        assert time.monotonic() < deadline, worker_log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    assert run_state(run_id)[0] != "CRASHED"
    proxy.refusing = None

    wait_for_state(run_id, "COMPLETED", timeout=120)
    with prefect_http() as api:
        states = api.get("flow_run_states/", params={"flow_run_id": run_id}).json()
        api.delete(f"deployments/{deployment}")
    assert "CRASHED" not in [state["type"] for state in states]
    assert proxy.refused >= 1
