"""Fault injection for the production-path tests: processes found, killed and described."""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import os
import re
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
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


def warm_parent_of(worker_pid: int) -> int | None:
    """The warm parent ``dealflow worker`` keeps beside its Prefect worker, if it runs: the
    worker's child with that command line (what it forks has the same one). A thread of
    the worker starts it, so its children are looked for under every thread."""
    children = []
    with contextlib.suppress(OSError):
        for thread in (Path("/proc") / str(worker_pid) / "task").iterdir():
            with contextlib.suppress(OSError):
                children += (thread / "children").read_text().split()
    for pid in map(int, children):
        with contextlib.suppress(OSError):
            if b"dealflow.warm.parent" in (Path("/proc") / str(pid) / "cmdline").read_bytes():
                return pid
    return None


def forked_runs(worker_pid: int) -> dict[int, str]:
    """The flow-run processes the worker's warm parent forked, by process id, with the
    flow run each executes (from the launcher that asked for it: a forked run is named
    after the start of its flow run's id)."""
    parent = warm_parent_of(worker_pid)
    if parent is None:
        return {}
    runs = set(flow_processes(worker_pid).values())
    found = {}
    for pid in children_of(parent):
        try:
            name = (Path("/proc") / str(pid) / "comm").read_text().strip()
        except OSError:
            continue
        if name.startswith("run-"):
            matching = [run for run in runs if run.startswith(name.removeprefix("run-"))]
            if matching:
                found[pid] = matching[0]
    return found


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
    # What was killed: "worker" (with every process it started), "launcher" (the process
    # the worker started for a run), "run" (the run forked from the warm parent), "warm
    # parent" (alone: runs already forked go on).
    target: str = "worker"

    @property
    def label(self) -> str:
        if self.target == "warm parent":
            return f"warm parent alone, {self.step}"
        where = f"{self.flow}: {self.step}" if self.flow else "worker idle (no flow process)"
        return where if self.target == "worker" else f"{self.target} alone, {where}"

    @property
    def hit(self) -> bool:
        """Whether the kill hit a flow-run process or the warm parent."""
        return bool(self.flow) or self.target == "warm parent"


def describe_kill(worker: str, runs: list[str], target: str = "worker") -> list[KillPoint]:
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
        return [KillPoint(worker, "", "", target)]
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
            points.append(KillPoint(worker, flow, step, target))
    return points


class Repeater(threading.Thread):
    """Calls ``step`` again and again until stopped; what it raised is kept, not lost."""

    def __init__(self, step: Callable[[], object], every: float, name: str = "") -> None:
        super().__init__(daemon=True, name=name or getattr(step, "__name__", "repeater"))
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

    def caught(self) -> str:
        """What ``step`` raised so far, each kind once with its count and where it came
        from, for a failure message."""
        kinds: Counter[str] = Counter()
        for exc in list(self.errors):
            frames = traceback.extract_tb(exc.__traceback__)
            where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
            said = " ".join(traceback.format_exception_only(exc)).strip()
            kinds[f"{said[:300]}{where}"] += 1
        if not kinds:
            return f"{self.name}: raised nothing"
        return f"{self.name}: raised {len(self.errors)} times: " + "; ".join(
            f"{n}x {kind}" for kind, n in kinds.most_common()
        )


def page_message(page: str) -> str:
    """The title and message of a Dealflow page (templates/pages/message.html), or its
    text, shortened."""
    found = re.search(r"<h1>(.*?)</h1>\s*<p[^>]*>(.*?)</p>", page, re.DOTALL)
    text = f"{found[1]}: {found[2]}" if found else re.sub(r"<[^>]+>", " ", page)
    return re.sub(r"\s+", " ", html.unescape(text)).strip()[:300]


class LinkAnswers:
    """What each of a deal's links answered, link by link: kept by a driver of the
    links so that a failure can say why a deal did not move on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, dict[str, Counter[str]]] = {}
        self._last: dict[tuple[str, str], dt.datetime] = {}

    def record(self, deal_id: str, link: str, answer: str) -> None:
        """``link``: which link (say "approval legal"); ``answer``: its status and page."""
        with self._lock:
            self._seen.setdefault(deal_id, {}).setdefault(link, Counter())[answer] += 1
            self._last[deal_id, link] = dt.datetime.now(dt.UTC)

    def response(self, deal_id: str, link: str, response: httpx.Response) -> None:
        self.record(deal_id, link, f"{response.status_code} {page_message(response.text)}")

    def of(self, deal_id: str) -> list[str]:
        with self._lock:
            links = {
                link: Counter(answers) for link, answers in self._seen.get(deal_id, {}).items()
            }
            last = dict(self._last)
        return [
            f"{link} (last {last[deal_id, link]:%H:%M:%S}): "
            + "; ".join(f"{n}x {answer}" for answer, n in answers.most_common())
            for link, answers in links.items()
        ]


def describe_deals(
    runs: dict[str, str],
    answers: LinkAnswers | None = None,
    repeaters: list[Repeater] | None = None,
    timeline: int = 8,
) -> str:
    """Every deal of ``runs`` (deal id: flow run id) whose run is not Completed: its run's
    state and pause key, its last timeline entries, its gates, the outbox, what its links
    answered; then what the repeaters caught. For the message of a failed wait."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from sqlalchemy import select

    from dealflow.infra.db import session_scope
    from models.tables import Approval, SentMessage, StageTransition

    lines = []
    with get_client(sync_client=True) as client:
        states: dict[str, tuple[str, str | None, str | None, str | None, str]] = {}
        for deal_id, run_id in runs.items():
            try:
                run = client.read_flow_run(UUID(run_id))
            except Exception as exc:  # the report goes on with what it can read
                states[deal_id] = ("UNREADABLE", "", None, repr(exc), "")
                continue
            state, tags = run.state, ", ".join(run.tags)
            states[deal_id] = (
                (state.type.value, state.name, state.state_details.pause_key, state.message, tags)
                if state
                else ("NO STATE", "", None, "", tags)
            )
    unfinished = {d: s for d, s in states.items() if s[0] != "COMPLETED"}
    lines.append(f"{len(unfinished)} of {len(runs)} deals not Completed:")
    with session_scope() as session:
        for deal_id, (kind, name, key, message, tags) in sorted(unfinished.items()):
            lines.append(
                f"- deal {deal_id}, run {runs[deal_id]}: {kind} ({name}), pause key {key}"
                + (f", state message {message!r}" if message else "")
                + f"; tags {tags}"
            )
            steps = session.scalars(
                select(StageTransition)
                .where(StageTransition.deal_id == deal_id)
                .order_by(StageTransition.at.desc(), StageTransition.id.desc())
                .limit(timeline)
            ).all()
            for step in reversed(steps):
                lines.append(f"    {step.at:%H:%M:%S} {step.key}: {step.event[:160]}")
            for gate in session.scalars(
                select(Approval).where(Approval.deal_id == deal_id).order_by(Approval.position)
            ):
                lines.append(
                    f"    gate {gate.gate}: assignee {gate.assignee_email}, "
                    f"requested {gate.requested_at and f'{gate.requested_at:%H:%M:%S}'}, "
                    f"decision {gate.decision} by {gate.decided_by}"
                )
            sent = session.scalars(
                select(SentMessage)
                .where(SentMessage.deal_id == deal_id)
                .order_by(SentMessage.id.desc())
                .limit(3)
            ).all()
            for mail in reversed(sent):
                lines.append(f"    outbox {mail.key}: {mail.status}")
            for said in answers.of(deal_id) if answers else []:
                lines.append(f"    link {said}")
    lines += [repeater.caught() for repeater in repeaters or []]
    return "\n".join(lines)


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


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    explain: Callable[[], str] | None = None,
) -> None:
    """Until ``condition`` holds; past ``timeout``, an AssertionError that says ``what``
    was awaited and, from ``explain``, why it did not come."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            detail = ""
            if explain is not None:
                try:
                    detail = "\n" + explain()
                except Exception as exc:  # the failure is reported all the same
                    detail = f"\n(describing why failed too: {exc!r})"
            raise AssertionError(f"not within {timeout:.0f} s: {what}{detail}")
        time.sleep(0.5)


class ApiProxy:
    """A TCP proxy in front of the Prefect server that can refuse one kind of request:
    a connection whose request line starts with ``refusing`` is closed unanswered, as a
    server being killed closes it. Everything else passes both ways untouched."""

    def __init__(self, upstream_port: int) -> None:
        import socket

        self.upstream = ("127.0.0.1", upstream_port)
        self.refusing: bytes | None = None
        self.refused = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: Any) -> None:
        import socket

        first = client.recv(65536)
        if self.refusing is not None and first.startswith(self.refusing):
            self.refused += 1
            client.close()
            return
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        server.sendall(first)
        threading.Thread(target=_pump, args=(server, client), daemon=True).start()
        _pump(client, server)


def _pump(source: Any, target: Any) -> None:
    import socket

    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    for end in (source, target):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def pool_of_its_own(stack: Any, prefix: str) -> Iterator[str]:
    """A process work pool beside the stack's, for a worker a test starts itself."""
    import uuid

    from tests.support import prefect_http

    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with prefect_http() as api:
        api.post("work_pools/", json={"name": name, "type": "process"}).raise_for_status()
        try:
            yield name
        finally:
            api.delete(f"work_pools/{name}")


@contextlib.contextmanager
def cold_worker(stack: Any, pool: str, log: Path, **settings: str) -> Iterator[Path]:
    """`dealflow worker --cold` on ``pool``, with the stack's Prefect settings and
    ``settings`` over them, its output in ``log``; until it has started polling."""
    import subprocess
    import sys

    from dealflow.stack.config import prefect_env
    from models.settings import PROJECT_ROOT

    env = {**os.environ, **prefect_env(stack.config), **settings}
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
