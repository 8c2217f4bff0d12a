"""What the tests do the way a user does: the CLI, deals submitted and taken to a gate.

Reading emails, following their links and waiting for run states are in ``harness``,
which the benchmarks share."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import select

from dealflow.infra.db import session_scope
from harness.mail import decide, link_in, to
from harness.ports import free_port
from harness.runs import wait_for_state
from models.settings import PROJECT_ROOT
from models.tables import Base


@contextmanager
def dealflow_database(url: str) -> Iterator[None]:
    """Dealflow's code in this process works on the database at ``url`` for a while."""
    from models.settings import get_settings

    before = os.environ.get("DEALFLOW_DATABASE_URL")
    os.environ["DEALFLOW_DATABASE_URL"] = url
    get_settings.cache_clear()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("DEALFLOW_DATABASE_URL", None)
        else:
            os.environ["DEALFLOW_DATABASE_URL"] = before
        get_settings.cache_clear()


def database_digest(url: str | None = None) -> str:
    """Every row of every table of Dealflow's database, hashed: a test's database holds a
    handful of deals, so this tells cheaply whether anything at all changed."""
    digest = hashlib.sha256()
    with session_scope(url) as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table).order_by(*table.primary_key.columns)):
                digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


class _RetryWhenBusy(httpx.HTTPTransport):
    """Ask again, as Prefect's own client does, when the server answers 503: its SQLite
    database was locked by another writer for longer than it waits."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for pause in (0.5, 1.0, 2.0, 4.0):
            response = super().handle_request(request)
            if response.status_code != 503:
                return response
            response.close()
            time.sleep(pause)
        return super().handle_request(request)


def prefect_http() -> httpx.Client:
    """Prefect's REST API as the stack's own processes reach it, credentials included."""
    auth = os.environ.get("PREFECT_API_AUTH_STRING", "")
    user, _, password = auth.partition(":")
    return httpx.Client(
        base_url=os.environ["PREFECT_API_URL"].rstrip("/") + "/",
        auth=(user, password) if auth else None,
        timeout=30,
        transport=_RetryWhenBusy(),
    )


def newest_on_demand_run(deployment: str) -> dict[str, Any]:
    """The newest run of ``deployment`` started on demand (by the CLI or a button)."""
    with prefect_http() as api:
        found = api.get(f"deployments/name/{deployment}/{deployment}").json()
        newest = {
            "deployments": {"id": {"any_": [found["id"]]}},
            "flow_runs": {"tags": {"all_": ["on-demand"]}},
            "sort": "START_TIME_DESC",
            "limit": 1,
        }
        [run] = api.post("flow_runs/filter", json=newest).json()
    return dict(run)


def production_path_only() -> list[Any]:
    """Marks for tests of the production path (DEALFLOW_TEST_STACK=postgres)."""
    import pytest

    from tests.conftest import STACK_ON_POSTGRES

    return [
        pytest.mark.stack,
        pytest.mark.skipif(
            not STACK_ON_POSTGRES,
            reason="the production path runs with DEALFLOW_TEST_STACK=postgres",
        ),
    ]


def fresh_deal(example: str = "acme.json", **changes: Any) -> dict[str, Any]:
    """An example deal (JSON or YAML) under a fresh id, so each test has a deal of its own."""
    data: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "examples" / example).read_text())
    data["deal_id"] = f"T{uuid.uuid4().hex[:8].upper()}-{data['deal_id']}"
    data.update(changes)
    return data


def deal_file(folder: Path, example: str = "acme.json", **changes: Any) -> tuple[Path, str]:
    """A copy of an example deal under a fresh id, written to a file."""
    data = fresh_deal(example, **changes)
    path = folder / f"{data['deal_id']}.json"
    path.write_text(json.dumps(data, default=str))
    return path, data["deal_id"]


def dealflow(
    *args: str, check: bool = True, cwd: Path = PROJECT_ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "dealflow", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dealflow {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def submit(path: Path) -> str:
    """Submit via the CLI; the flow run id it printed."""
    out = dealflow("deal", "submit", str(path)).stdout
    match = re.search(r"/runs/flow-run/([0-9a-f-]{36})", out)
    assert match, out
    return match.group(1)


def approve_via_email(inbox: Any, approver: str, subject: str, deal_id: str, comment: str) -> str:
    """Follow the link of the email to ``approver`` and approve; the link used."""
    link = link_in(inbox.wait_for(to(approver, subject, deal_id)))
    response = decide(link, "approve", comment)
    assert response.status_code == 200, response.text
    assert "You approved this deal" in response.text
    return link


def deal_waiting_at_manager(inbox: Any, folder: Path, **changes: Any) -> tuple[str, str, str]:
    """Submit a fresh copy of the ACME deal and wait until its run is suspended at the
    manager's gate; the deal id, its run id and the manager's link."""
    path, deal_id = deal_file(folder, **changes)
    run_id = submit(path)
    link = link_in(inbox.wait_for(to("mara.keller@example.com", "Approval needed", deal_id)))
    wait_for_state(run_id, "PAUSED", key="gate-manager")
    return deal_id, run_id, link


def runs_of_deal(deal_id: str) -> list[str]:
    """Ids of every Prefect flow run started for the deal (one, when intake is idempotent)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"deal-{deal_id}"])),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=10,
        )
    return [str(run.id) for run in runs]


class WebServices:
    """Web services of a test's own: the test stack's settings with some changed."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, **env: str) -> str:
        """Start one with ``env`` added to the environment; its base URL, once it answers."""
        port = free_port()
        log_path = self.logs / f"web-{port}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "web.app:app", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.started.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    return base
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"the web service did not start on port {port}")

    def stop(self) -> None:
        for process in self.started:
            process.terminate()
            process.wait(timeout=15)


def deal_row(deal_id: str, stage: str, delivery_start: str = "2026-06-01", **extra: Any) -> Any:
    """A deal's row as its run leaves it at ``stage``, written without a run (reports and
    queries tested on their own); ``extra`` sets any other column."""
    import datetime as dt
    from decimal import Decimal

    from models.tables import Deal

    created = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    return Deal(
        id=deal_id,
        title=f"Deal {deal_id}",
        team="emea",
        customer_name=f"Customer {deal_id}",
        amount=Decimal(10000),
        currency="EUR",
        sales_rep_email="sam@example.com",
        sales_rep_name="Sam",
        payload={"delivery_start": delivery_start},
        payload_hash=deal_id,
        stage=stage,
        created_at=created,
        updated_at=created,
        **extra,
    )
