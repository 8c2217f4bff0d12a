"""What the end-to-end tests do the way a user does: the CLI, emails, links, the page."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import yaml

from models.settings import PROJECT_ROOT


def prefect_http() -> httpx.Client:
    """Prefect's REST API as the stack's own processes reach it, credentials included."""
    auth = os.environ.get("PREFECT_API_AUTH_STRING", "")
    user, _, password = auth.partition(":")
    return httpx.Client(
        base_url=os.environ["PREFECT_API_URL"].rstrip("/") + "/",
        auth=(user, password) if auth else None,
        timeout=30,
    )


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


LINK = re.compile(r"https?://[^\s\"'<>]+/approvals/[A-Za-z0-9_.=-]+")
ACCEPTANCE_LINK = re.compile(r"https?://[^\s\"'<>]+/acceptance/[A-Za-z0-9_.=-]+")


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


def dealflow(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "dealflow", *args], capture_output=True, text=True, cwd=PROJECT_ROOT
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


def to(address: str, subject_part: str, deal_id: str) -> Any:
    def predicate(message: EmailMessage) -> bool:
        return (
            address in str(message["To"])
            and subject_part in str(message["Subject"])
            and deal_id in str(message["Subject"]) + str(message.get_body(("plain",)))
        )

    return predicate


def text_of(message: EmailMessage, subtype: str = "plain") -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no {subtype} part in {message['Subject']}"
    return str(part.get_content())


def link_in(message: EmailMessage, pattern: re.Pattern[str] = LINK) -> str:
    text_links = pattern.findall(text_of(message, "plain"))
    html_links = [link.replace("&amp;", "&") for link in pattern.findall(text_of(message, "html"))]
    assert text_links and text_links[0] in html_links, "the text and HTML parts carry the same link"
    return str(text_links[0])


def decide(link: str, decision: str, comment: str = "") -> httpx.Response:
    return httpx.post(link, data={"decision": decision, "comment": comment}, timeout=60)


def run_state(run_id: str) -> tuple[str, str | None, str]:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
    assert run.state is not None
    return run.state.type.value, run.state.state_details.pause_key, str(run.state.name)


def wait_for_state(run_id: str, state: str, timeout: float = 90, key: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    seen: tuple[str, str | None, str] = ("", None, "")
    while time.monotonic() < deadline:
        seen = run_state(run_id)
        if seen[0] == state and (key is None or seen[1] == key):
            return
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} is {seen}, expected {state} {key or ''}")


def processes_running(run_id: str) -> list[int]:
    """Process ids on this machine whose environment names the flow run."""
    needle = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def wait_until_no_process(run_id: str, timeout: float = 30) -> None:
    """A suspended run's process exits shortly after the state changes; then none holds it."""
    deadline = time.monotonic() + timeout
    while processes_running(run_id):
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still holds processes {processes_running(run_id)}")
        time.sleep(0.2)


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
