"""Fault injection for the production-path tests: processes found, killed and described."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from tests.conftest import Inbox

INTAKE_KEY = {"X-API-Key": "key-for-tests-0123456789"}  # tests/conftest.py's test-crm key


def children_of(pid: int) -> list[int]:
    """Every process descended from ``pid``, found by their parents in /proc."""
    parents: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields follow its last ")".
        parents[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent:
                found.append(child)
                frontier.append(child)
    return found


def flow_run_of(pid: int) -> str | None:
    """The Prefect flow run a process executes, from its environment."""
    try:
        environ = (Path("/proc") / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    for item in environ.split(b"\0"):
        if item.startswith(b"PREFECT__FLOW_RUN_ID="):
            return item.split(b"=", 1)[1].decode()
    return None


def flow_processes(worker_pid: int) -> dict[int, str]:
    """The worker's flow-run processes, by process id, with the run each executes."""
    runs = {pid: flow_run_of(pid) for pid in children_of(worker_pid)}
    return {pid: run for pid, run in runs.items() if run}


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all it started, as a machine losing power would."""
    for victim in [pid, *children_of(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


@dataclass(frozen=True)
class KillPoint:
    worker: str
    flow: str  # the flow the killed process ran, or "" for a worker with no flow process
    step: str  # where that run stood in Prefect when it died

    @property
    def label(self) -> str:
        return f"{self.flow}: {self.step}" if self.flow else "worker idle (no flow process)"


def describe_kill(worker: str, runs: list[str]) -> list[KillPoint]:
    """Where each killed run stood: its state and the task it was in. A process killed
    by SIGKILL reports nothing more, so Prefect keeps exactly that."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import TaskRunSort

    if not runs:
        return [KillPoint(worker, "", "")]
    points = []
    with get_client(sync_client=True) as client:
        for run_id in runs:
            run = client.read_flow_run(UUID(run_id))
            flow = client.read_flow(run.flow_id).name
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
                task_run_filter=TaskRunFilter(
                    state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.RUNNING]))
                ),
                sort=TaskRunSort.EXPECTED_START_TIME_DESC,
                limit=20,
            )
            state = run.state.type.value.lower() if run.state else "unknown"
            if tasks:
                step = "in task " + ", ".join(sorted({t.name.rsplit("-", 1)[0] for t in tasks}))
            elif state == "running":
                step = "running, between tasks"
            else:
                step = f"{state} (process starting or exiting)"
            points.append(KillPoint(worker, flow, step))
    return points


class Repeater(threading.Thread):
    """Calls ``step`` again and again until stopped; what it raised is kept, not lost."""

    def __init__(self, step: Callable[[], object], every: float) -> None:
        super().__init__(daemon=True)
        self.step, self.every = step, every
        self.stopped = threading.Event()
        self.errors: list[BaseException] = []

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.step()
            except Exception as exc:  # kept for the test to show
                self.errors.append(exc)
            self.stopped.wait(self.every)

    def stop(self) -> None:
        self.stopped.set()
        self.join(60)


def emails_since(inbox: Inbox, count_before: int) -> list[EmailMessage]:
    return inbox.messages[count_before:]


def repeated_keys(messages: list[EmailMessage]) -> dict[str, int]:
    """Dealflow keys that arrived more than once, and how often."""
    counts = Counter(str(m["X-Dealflow-Key"]) for m in messages)
    return {key: n for key, n in counts.items() if n > 1}


def submit_over_http(web_url: str, deal: dict[str, Any]) -> str:
    response = httpx.post(
        f"{web_url}/api/deals",
        content=json.dumps(deal, default=str),  # YAML examples hold dates
        headers={**INTAKE_KEY, "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["flow_run_id"])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.5)
