"""Load: N deals submitted and approved over HTTP on the production path, against bare Prefect.

The production path of docs/deployment.md (``dealflow.stack.Stack`` with two ``prefect
worker`` processes on a process work pool capped at ``--pool-limit`` runs, the web service
as two uvicorn processes, Prefect and Dealflow on PostgreSQL) carries N deals at once:

* ours: a load script (this one) submits every deal with ``POST /api/deals``; an SMTP
  server in this process takes each approval request as it arrives, and a pool of
  ``--concurrency`` HTTP clients posts the approval form at its link (what the page's
  Approve button sends). A deal is done when the email that follows its last approval
  arrives (the delivery kickoff, or the acceptance request).
* baseline: a bare Prefect flow with as many suspends and no work (``bare_suspends``
  below, like bench/bare_flow.py), deployed to the same work pool and run by the same two
  workers; N runs created, each resumed with ``resume_flow_run`` as soon as it is PAUSED,
  by the same number of clients.

Measured: wall time from the first submission (creation) to the last deal (run) done,
deals per minute, latency from each approval POST to the next email (baseline: from each
resume call to the run's PAUSED state at its next gate, by the state's timestamp), and
peak memory (RSS, from /proc every 0.5 s) of the Prefect server, of the workers with the
flow-run processes they start, and of the web service.

    .venv/bin/python bench/load.py [--deals 1000] [--concurrency 10] [--pool-limit 10]
                                   [--example FILE] [--skip-baseline] [--out FILE.json]

Prints the tables and writes them to bench/RESULTS.md (only this benchmark's section).
Prefect reads its settings once, when first imported: this module imports Prefect only
inside functions, after ``plan_stack`` has put the stack's environment in place.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import math
import os
import queue
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Run as a script (and loaded by the workers as the baseline flow's entrypoint), this
# file imports its neighbours in bench/ from the checkout.
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.approval_latency import (  # noqa: E402
    BenchError,
    Received,
    TimedInbox,
    checkout,
    free_port,
    machine,
    stats_of,
    table,
    write_results,
)

if TYPE_CHECKING:
    import httpx
    from prefect import Flow
    from prefect.client.orchestration import SyncPrefectClient

    from dealflow.stack import Stack, StackConfig

SECTION_TITLE = "## Load: deals approved over HTTP on the production path (bench/load.py)"
SCRIPT = "bench/load.py"
POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
BASELINE_NAME = "bare-load"
BASELINE_DEPLOYMENT = f"{BASELINE_NAME}/{BASELINE_NAME}"
BASELINE_ENTRYPOINT = "bench/load.py:bare_suspends"  # relative to PROJECT_ROOT
DEFAULT_EXAMPLE = "examples/initech.json"
SMALL_SEATS = 20  # 20 x 420.00 = 8,400.00: below the matrix's small-standard limit of 10,000
SAMPLE_SECONDS = 0.5  # memory sampling interval
STATE_POLL_SECONDS = 0.25  # how often the baseline asks which of its runs reached a gate
STATE_POLL_RUNS = 1000  # run ids per such query
HTTP_TIMEOUT = 60.0  # one request; the web service may wait up to 10 s for a run's gate
RETRIES = 5  # of a request answered 503 (try again), one second apart
DRAIN_TIMEOUT = 180.0  # for the workers to have no flow-run process left
SUBJECT_DEAL = re.compile(r"\(([A-Za-z0-9][A-Za-z0-9-]{1,62}[A-Za-z0-9])\)")
MIB = 1024 * 1024


def raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM stops the benchmark like Ctrl-C: the stack is stopped on the way out."""
    raise KeyboardInterrupt


def say(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- baseline flow


@functools.cache
def baseline_flow() -> Flow[..., str]:
    """The baseline: a flow that suspends ``suspends`` times (keys gate-0, gate-1, ...) and
    does nothing else. It imports nothing of Dealflow, so each of its flow-run processes
    costs what Prefect alone costs; the deal flow suspends once per gate and once more
    for the delivery acceptance."""
    from prefect import flow, suspend_flow_run

    from bench.bare_flow import Go

    @flow(name=BASELINE_NAME, persist_result=False)
    def bare_suspends(suspends: int = 2) -> str:
        for number in range(suspends):
            suspend_flow_run(wait_for_input=Go, key=f"gate-{number}")
        return "done"

    return bare_suspends


def __getattr__(name: str) -> Any:
    """``bare_suspends``, the deployment's entrypoint, is built when first asked for (by
    Prefect's loader in a flow-run process), so that importing this module does not
    import Prefect before the stack's environment is set."""
    if name == "bare_suspends":
        return baseline_flow()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- the stack


@dataclass(frozen=True)
class BenchPlan:
    """Where this run's stack lives: a data folder, free ports, databases of its own."""

    data_dir: str
    prefect_port: int
    web_port: int
    smtp_port: int
    databases: dict[str, str]  # "dealflow" / "prefect" -> database name
    api_key: str  # for POST /api/deals
    pool_limit: int


def stack_config(plan: BenchPlan, postgres: str = POSTGRES_SERVER) -> StackConfig:
    """The production path: PostgreSQL, a process work pool with two workers, the web
    service as two processes, and no mail catcher (this process receives the mail)."""
    from dealflow.stack import StackConfig

    return StackConfig(
        data_dir=Path(plan.data_dir),
        prefect_port=plan.prefect_port,
        web_port=plan.web_port,
        smtp_port=plan.smtp_port,
        mail_catcher=False,
        workers=2,
        web_processes=2,
        pool_limit=plan.pool_limit,
        database_url=f"{postgres}/{plan.databases['dealflow']}",
        prefect_database_url=f"{postgres.replace('+psycopg', '+asyncpg')}/{plan.databases['prefect']}",
        extra_env={"DEALFLOW_INTAKE_API_KEYS": json.dumps({"bench": plan.api_key})},
    )


def plan_stack(prefix: str, pool_limit: int) -> BenchPlan:
    """Choose the stack's ports, data folder and database names (``prefix`` and this
    process's id), and put its environment in place for this process: Prefect and
    Dealflow read their settings once, so this comes before either is first used."""
    from dealflow.stack import stack_env

    if "prefect" in sys.modules:
        raise BenchError("Prefect was imported before the stack's environment was set")
    tag = f"{prefix}_{os.getpid()}"
    plan = BenchPlan(
        data_dir=tempfile.mkdtemp(prefix=f"dealflow-{prefix.replace('_', '-')}-"),
        prefect_port=free_port(),
        web_port=free_port(),
        smtp_port=free_port(),
        databases={"dealflow": f"{tag}_dealflow", "prefect": f"{tag}_prefect"},
        api_key=secrets.token_urlsafe(24),
        pool_limit=pool_limit,
    )
    os.environ.update(stack_env(stack_config(plan)))
    return plan


def create_databases(names: Sequence[str], postgres: str = POSTGRES_SERVER) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(f"{postgres}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for name in names:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        raise BenchError(f"PostgreSQL is not reachable at {postgres}: {exc.orig}") from None
    finally:
        engine.dispose()


def drop_databases(names: Sequence[str], postgres: str = POSTGRES_SERVER) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(f"{postgres}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for name in names:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except sa.exc.SQLAlchemyError as exc:
        print(f"could not drop the databases {list(names)}: {exc}", file=sys.stderr)
    finally:
        engine.dispose()


def database_size(name: str, postgres: str = POSTGRES_SERVER) -> int:
    """Bytes on disk of database ``name`` (``pg_database_size``)."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"{postgres}/postgres")
    try:
        with engine.connect() as connection:
            size = connection.execute(sa.text("SELECT pg_database_size(:n)"), {"n": name})
            return int(size.scalar_one())
    finally:
        engine.dispose()


@contextmanager
def running_stack(plan: BenchPlan, inbox: TimedInbox, keep_data: bool = False) -> Iterator[Stack]:
    """Databases, this process's SMTP server and the stack, all gone again on the way out
    (also on Ctrl-C or an error; the logs' tails are printed on an error)."""
    from aiosmtpd.controller import Controller

    from dealflow.stack import Stack

    config = stack_config(plan)
    names = list(plan.databases.values())
    create_databases(names)
    controller = Controller(inbox, hostname=config.host, port=config.smtp_port)
    stack = Stack(config)
    try:
        controller.start()
        began = time.monotonic()
        stack.start()
        say(f"stack up in {time.monotonic() - began:.0f}s (data in {plan.data_dir})")
        yield stack
    except BaseException as exc:
        if not isinstance(exc, KeyboardInterrupt):
            for name in stack.processes:
                print(f"--- {name} log (tail) ---\n{stack.log_tail(name)}", file=sys.stderr)
        raise
    finally:
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        stack.stop()
        controller.stop()
        drop_databases(names)
        if keep_data:
            print(f"data kept in {plan.data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(plan.data_dir, ignore_errors=True)
        signal.signal(signal.SIGINT, interrupt)


def stack_roles(stack: Stack) -> dict[str, list[int]]:
    """The process ids whose process trees the memory figures add up, by role."""
    workers = sorted(name for name in stack.processes if name.startswith("worker"))
    return {
        "server": [stack.processes["prefect"].pid],
        "web": [stack.processes["web"].pid],
        "workers": [stack.processes[name].pid for name in workers],
    }


# --------------------------------------------------------------------------- memory


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, resident bytes) of every process on the machine, from /proc."""
    found: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry.name}/statm", "rb") as statm:
                resident = int(statm.read().split()[1]) * PAGE_SIZE
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        found[int(entry.name)] = (int(fields[1]), resident)
    return found


def children_map(processes: dict[int, tuple[int, int]]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _rss) in processes.items():
        children.setdefault(parent, []).append(pid)
    return children


def tree_rss(
    pid: int, processes: dict[int, tuple[int, int]], children: dict[int, list[int]]
) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        if current in processes:
            total += processes[current][1]
        todo.extend(children.get(current, ()))
    return total


@dataclass
class MemorySample:
    """One look at /proc. Bytes; ``flow`` holds each worker child's process tree."""

    at: float  # monotonic
    server: int
    web: int
    workers_own: list[int]  # each worker process alone
    flow: dict[int, int]  # pid of a flow-run process (a worker's child) -> its tree's bytes

    @property
    def workers_total(self) -> int:
        return sum(self.workers_own) + sum(self.flow.values())


def sample_memory(roles: dict[str, list[int]]) -> MemorySample:
    processes = process_table()
    children = children_map(processes)
    flow: dict[int, int] = {}
    for worker in roles["workers"]:
        for child in children.get(worker, ()):
            flow[child] = tree_rss(child, processes, children)
    return MemorySample(
        at=time.monotonic(),
        server=sum(tree_rss(pid, processes, children) for pid in roles["server"]),
        web=sum(tree_rss(pid, processes, children) for pid in roles["web"]),
        workers_own=[processes.get(pid, (0, 0))[1] for pid in roles["workers"]],
        flow=flow,
    )


class MemorySampler:
    """Samples the stack's process trees every ``interval`` seconds in a thread."""

    def __init__(self, roles: dict[str, list[int]], interval: float = SAMPLE_SECONDS) -> None:
        self.roles = roles
        self.interval = interval
        self.samples: list[MemorySample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(sample_memory(self.roles))
            self._stop.wait(self.interval)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def between(self, start: float, end: float) -> list[MemorySample]:
        return [s for s in list(self.samples) if start <= s.at <= end]


@dataclass(frozen=True)
class MemoryPeaks:
    """Peaks over a phase, in bytes."""

    samples: int
    server: int
    web: int
    workers_total: int  # workers and their flow-run processes, summed per sample
    workers_own: int  # the worker processes alone, summed per sample
    flow_process: int  # the largest one flow-run process (tree) was seen at
    flow_processes: int  # the most flow-run processes seen at once


def memory_peaks(samples: Sequence[MemorySample]) -> MemoryPeaks:
    if not samples:
        return MemoryPeaks(0, 0, 0, 0, 0, 0, 0)
    return MemoryPeaks(
        samples=len(samples),
        server=max(s.server for s in samples),
        web=max(s.web for s in samples),
        workers_total=max(s.workers_total for s in samples),
        workers_own=max(sum(s.workers_own) for s in samples),
        flow_process=max((rss for s in samples for rss in s.flow.values()), default=0),
        flow_processes=max(len(s.flow) for s in samples),
    )


def wait_workers_idle(roles: dict[str, list[int]], timeout: float = DRAIN_TIMEOUT) -> None:
    """Until no worker has a child process (no flow run is executing)."""
    deadline = time.monotonic() + timeout
    while sample_memory(roles).flow:
        if time.monotonic() > deadline:
            raise BenchError(f"the workers still run flow processes after {timeout:.0f}s")
        time.sleep(0.5)


# --------------------------------------------------------------------------- clients


class Clients:
    """One client thread's connections: HTTP to the web service, and Prefect's client."""

    def __init__(self, resources: ExitStack) -> None:
        self._resources = resources
        self._http: httpx.Client | None = None
        self._prefect: SyncPrefectClient | None = None

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            import httpx

            self._http = self._resources.enter_context(httpx.Client(timeout=HTTP_TIMEOUT))
        return self._http

    @property
    def prefect(self) -> SyncPrefectClient:
        if self._prefect is None:
            from prefect.client.orchestration import get_client

            self._prefect = self._resources.enter_context(get_client(sync_client=True))
        return self._prefect


Job = Callable[[Clients], None]
URGENT, LATER = 0, 1  # approvals and resumes go before submissions and creations


class ClientPool:
    """``size`` threads, each one client, taking jobs by priority (then first come)."""

    def __init__(self, size: int, on_error: Callable[[BaseException], None]) -> None:
        self._jobs: queue.PriorityQueue[tuple[int, int, Job | None]] = queue.PriorityQueue()
        self._order = iter(range(sys.maxsize))
        self._lock = threading.Lock()
        self._on_error = on_error
        self._threads = [
            threading.Thread(target=self._serve, name=f"client-{n}", daemon=True)
            for n in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, priority: int, job: Job) -> None:
        with self._lock:
            self._jobs.put((priority, next(self._order), job))

    def _serve(self) -> None:
        with ExitStack() as resources:
            clients = Clients(resources)
            while True:
                _priority, _order, job = self._jobs.get()
                if job is None:
                    return
                try:
                    job(clients)
                except Exception as exc:  # recorded by the job's owner; the thread goes on
                    self._on_error(exc)

    def close(self, cancel: bool = False) -> None:
        """Stop the threads once the queued jobs are done, or at once with ``cancel``
        (queued jobs dropped; a request under way may still finish: the threads are
        daemons, the stack goes down after this anyway)."""
        with self._lock:
            if cancel:
                while not self._jobs.empty():
                    self._jobs.get_nowait()
            for _ in self._threads:
                self._jobs.put((sys.maxsize, next(self._order), None))
        deadline = time.monotonic() + (5.0 if cancel else HTTP_TIMEOUT + 5)
        for thread in self._threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))

    @contextmanager
    def running(self) -> Iterator[ClientPool]:
        """The pool, closed on the way out: cancelled if something went wrong."""
        try:
            yield self
        except BaseException:
            self.close(cancel=True)
            raise
        self.close()


# --------------------------------------------------------------------------- the deal


def load_example(example: str | None) -> tuple[dict[str, Any], str]:
    """The deal every submission copies, and how the report names it.

    Without ``--example``: examples/initech.json with 20 seats instead of 25 (8,400.00
    USD), since no example deal is small enough for the matrix's small-standard rule,
    the route with the manager's gate only."""
    path = PROJECT_ROOT / (example or DEFAULT_EXAMPLE)
    import yaml

    data: dict[str, Any] = yaml.safe_load(path.read_text())  # JSON is YAML too
    if example is not None:
        return data, str(path.relative_to(PROJECT_ROOT))
    item = data["line_items"][0]
    item["quantity"] = SMALL_SEATS
    data["amount"] = f"{SMALL_SEATS * float(item['unit_price']):.2f}"
    return data, f"{DEFAULT_EXAMPLE} with {SMALL_SEATS} seats ({data['amount']} {data['currency']})"


@dataclass(frozen=True)
class RouteInfo:
    rule: str
    gates: list[str]
    approvers: list[str]


def route_of(deal: dict[str, Any], source: str) -> RouteInfo:
    """The gates the matrix gives the deal, as ``dealflow matrix explain`` shows them."""
    from dealflow.intake import parse_deal
    from models.matrix import load_matrix
    from models.settings import get_settings

    route = load_matrix(get_settings().matrix_path).route(parse_deal(deal, source))
    return RouteInfo(
        rule=route.rule.name,
        gates=[gate.name for gate, _person in route.steps],
        approvers=[person.email for _gate, person in route.steps],
    )


def fresh_copies(template: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """``count`` copies of the deal, each under an id of its own."""
    run = uuid.uuid4().hex[:6].upper()
    return [{**template, "deal_id": f"L{run}-{number:05d}"} for number in range(count)]


# --------------------------------------------------------------------------- ours


@dataclass
class ApprovalSample:
    """One approval: its request email, the POST at its link, and the next email."""

    gate_email_at: float  # monotonic, the request's arrival at our SMTP server
    link: str
    post_start: float | None = None
    post_end: float | None = None
    status: int | None = None
    attempts: int = 0
    next_email_at: float | None = None
    next_email: str | None = None  # "approval request", "kickoff" or "acceptance request"


@dataclass
class DealTrack:
    deal_id: str
    submit_start: float | None = None
    submit_end: float | None = None
    flow_run_id: str | None = None
    first_email_at: float | None = None
    approvals: list[ApprovalSample] = field(default_factory=list)
    done_at: float | None = None
    error: str | None = None


def email_kind(subject: str) -> str | None:
    """What a deal's email is to this benchmark, from its subject (tasks/*.py)."""
    if subject.startswith("Approval needed:"):
        return "approval request"
    if subject.startswith("Delivery kickoff:"):
        return "kickoff"
    if subject.startswith("Record acceptance when delivered:"):
        return "acceptance request"
    return None


class DealsUnderLoad:
    """Submits the deals and approves each gate as its request arrives (ours)."""

    def __init__(self, deals: Sequence[dict[str, Any]], web_url: str, api_key: str) -> None:
        self.deals = list(deals)
        self.web_url = web_url
        self.api_key = api_key
        self.tracks = {d["deal_id"]: DealTrack(d["deal_id"]) for d in self.deals}
        self.changed = threading.Condition()
        self.progress_at = time.monotonic()
        self.pool: ClientPool | None = None
        self.stray_errors: list[str] = []

    # --- the SMTP side: called in the SMTP server's thread for every message
    def on_email(self, received: Received) -> None:
        subject = str(received.message["Subject"])
        kind = email_kind(subject)
        if kind is None:
            return
        deal_id = next((m for m in SUBJECT_DEAL.findall(subject) if m in self.tracks), None)
        if deal_id is None:
            return
        with self.changed:
            track = self.tracks[deal_id]
            if track.first_email_at is None:
                track.first_email_at = received.monotonic
            last = track.approvals[-1] if track.approvals else None
            if last is not None and last.post_start is not None and last.next_email_at is None:
                last.next_email_at, last.next_email = received.monotonic, kind
            if kind == "approval request":
                link = self._link(received.message)
                if link is None or any(a.link == link for a in track.approvals):
                    return
                approval = ApprovalSample(gate_email_at=received.monotonic, link=link)
                track.approvals.append(approval)
                assert self.pool is not None
                self.pool.submit(URGENT, lambda clients: self._approve(clients, track, approval))
            elif track.done_at is None:
                track.done_at = received.monotonic
            self.progress_at = time.monotonic()
            self.changed.notify_all()

    def _link(self, message: EmailMessage) -> str | None:
        from tests.support import link_in

        try:
            return link_in(message)
        except AssertionError:
            return None

    # --- the client side: jobs of the client pool
    def _submit(self, clients: Clients, deal: dict[str, Any]) -> None:
        import httpx

        track = self.tracks[deal["deal_id"]]
        track.submit_start = time.monotonic()
        try:
            for _attempt in range(RETRIES):
                response = clients.http.post(
                    f"{self.web_url}/api/deals", json=deal, headers={"X-API-Key": self.api_key}
                )
                if response.status_code != 503:
                    break
                time.sleep(1)
        except httpx.HTTPError as exc:
            self._fail(track, f"submission failed: {type(exc).__name__}: {exc}")
            return
        track.submit_end = time.monotonic()
        if response.status_code == 201:
            track.flow_run_id = response.json()["flow_run_id"]
        else:
            self._fail(track, f"submission answered {response.status_code}: {response.text[:300]}")

    def _approve(self, clients: Clients, track: DealTrack, approval: ApprovalSample) -> None:
        import httpx

        approval.post_start = time.monotonic()
        try:
            for _attempt in range(RETRIES):
                approval.attempts += 1
                response = clients.http.post(
                    approval.link, data={"decision": "approve", "comment": "load benchmark"}
                )
                if response.status_code != 503:  # 503: the deal is still on its way to the gate
                    break
                time.sleep(1)
        except httpx.HTTPError as exc:
            self._fail(track, f"approval failed: {type(exc).__name__}: {exc}")
            return
        approval.post_end, approval.status = time.monotonic(), response.status_code
        if response.status_code != 200 or "You approved this deal" not in response.text:
            self._fail(track, f"approval answered {response.status_code}")

    def _fail(self, track: DealTrack, reason: str) -> None:
        with self.changed:
            track.error = track.error or reason
            self.progress_at = time.monotonic()
            self.changed.notify_all()

    # --- the run
    def finished(self) -> int:
        return sum(1 for t in self.tracks.values() if t.done_at is not None or t.error)

    def run(self, concurrency: int, timeout: float, stall: float) -> tuple[float, float]:
        """Submit every deal and wait until each is done or failed; (start, end) monotonic."""

        def stray(exc: BaseException) -> None:
            with self.changed:
                self.stray_errors.append(f"{type(exc).__name__}: {exc}")
                self.progress_at = time.monotonic()
                self.changed.notify_all()

        self.pool = ClientPool(concurrency, stray)
        start = time.monotonic()
        with self.pool.running() as pool:
            for deal in self.deals:
                pool.submit(LATER, functools.partial(self._submit, deal=deal))
            wait_until(
                self.changed, self.finished, len(self.deals), "deals", start, timeout, stall, self
            )
        if self.stray_errors:
            raise BenchError(f"client errors: {self.stray_errors[:3]}")
        ends = [t.done_at for t in self.tracks.values() if t.done_at is not None]
        return start, max(ends, default=time.monotonic())


class Progress(Protocol):
    progress_at: float  # monotonic, when a deal or run last moved
    stray_errors: list[str]


def wait_until(
    changed: threading.Condition,
    finished: Callable[[], int],
    total: int,
    what: str,
    start: float,
    timeout: float,
    stall: float,
    progress: Progress,
) -> None:
    """Until ``finished()`` reaches ``total``; BenchError after ``timeout`` seconds, when
    nothing moved for ``stall`` seconds (``progress.progress_at``, monotonic), or at an
    error no deal or run took (``progress.stray_errors``: a bug of this script)."""
    shown = start
    with changed:
        while (done := finished()) < total:
            if progress.stray_errors:
                raise BenchError(f"client errors: {progress.stray_errors[:3]}")
            now = time.monotonic()
            if now - start > timeout:
                raise BenchError(f"{done} of {total} {what} finished within {timeout:.0f}s")
            if now - progress.progress_at > stall:
                raise BenchError(f"nothing moved for {stall:.0f}s; {done} of {total} {what} done")
            if now - shown >= 15:
                say(f"  {done}/{total} {what} done after {now - start:.0f}s")
                shown = now
            changed.wait(1.0)


# --------------------------------------------------------------------------- baseline


@dataclass
class ResumeSample:
    start: float  # monotonic, the resume call
    start_wall: float
    end: float | None = None
    paused_wall: float | None = None  # the timestamp of the run's next PAUSED state


@dataclass
class BareTrack:
    index: int
    run_id: str | None = None
    create_start: float | None = None
    create_start_wall: float | None = None
    first_paused_wall: float | None = None
    gates_passed: int = 0
    resumes: list[ResumeSample] = field(default_factory=list)
    in_transit: bool = False  # created or resumed; not yet seen at its next gate
    done_wall: float | None = None
    error: str | None = None


def register_baseline() -> uuid.UUID:
    """Deploy ``bare_suspends`` to the stack's work pool: from this checkout (its pull step
    sets the working directory, as prefect.yaml's does), run by the same workers."""
    import inspect

    from prefect import Flow

    from dealflow.stack import WORK_POOL

    source_flow = Flow.from_source(source=str(PROJECT_ROOT), entrypoint=BASELINE_ENTRYPOINT)
    assert isinstance(source_flow, Flow)
    deployment = source_flow.to_deployment(name=BASELINE_NAME, work_pool_name=WORK_POOL)
    assert not inspect.isawaitable(deployment)
    deployment_id = deployment.apply()
    assert isinstance(deployment_id, uuid.UUID)
    return deployment_id


class BareUnderLoad:
    """Creates the baseline runs and resumes each as soon as it is PAUSED."""

    def __init__(self, deployment_id: uuid.UUID, count: int, suspends: int) -> None:
        self.deployment_id = deployment_id
        self.suspends = suspends
        self.tracks = [BareTrack(n) for n in range(count)]
        self.changed = threading.Condition()
        self.progress_at = time.monotonic()
        self.pool: ClientPool | None = None
        self.stray_errors: list[str] = []

    def _create(self, clients: Clients, track: BareTrack) -> None:
        track.create_start, track.create_start_wall = time.monotonic(), time.time()
        try:
            run = clients.prefect.create_flow_run_from_deployment(
                self.deployment_id, parameters={"suspends": self.suspends}
            )
        except Exception as exc:
            self._fail(track, f"creation failed: {type(exc).__name__}: {exc}")
            return
        with self.changed:
            track.run_id, track.in_transit = str(run.id), True

    def _resume(self, clients: Clients, track: BareTrack) -> None:
        from dealflow.prefect_api import resume_with_input

        assert track.run_id is not None
        sample = ResumeSample(start=time.monotonic(), start_wall=time.time())
        track.resumes.append(sample)
        try:
            resume_with_input(track.run_id, {"approved": True})  # retries "schema not found"
        except Exception as exc:
            self._fail(track, f"resume failed: {type(exc).__name__}: {exc}")
            return
        sample.end = time.monotonic()
        with self.changed:
            track.in_transit = True

    def _fail(self, track: BareTrack, reason: str) -> None:
        with self.changed:
            track.error = track.error or reason
            self.progress_at = time.monotonic()
            self.changed.notify_all()

    def _watch(self, stop: threading.Event) -> None:
        """Which runs in transit reached their next gate: one query for all of them."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterId,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType
        from prefect.client.schemas.sorting import FlowRunSort

        settled = [StateType.PAUSED, StateType.COMPLETED, StateType.FAILED, StateType.CRASHED]
        settled.append(StateType.CANCELLED)
        with get_client(sync_client=True) as client:
            while not stop.wait(STATE_POLL_SECONDS):
                with self.changed:
                    moving = {t.run_id: t for t in self.tracks if t.in_transit and t.run_id}
                ids = [uuid.UUID(r) for r in moving]
                for at in range(0, len(ids), STATE_POLL_RUNS):
                    chunk = ids[at : at + STATE_POLL_RUNS]
                    runs = client.read_flow_runs(
                        flow_run_filter=FlowRunFilter(
                            id=FlowRunFilterId(any_=chunk),
                            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=settled)),
                        ),
                        sort=FlowRunSort.ID_DESC,
                        limit=len(chunk),
                    )
                    for run in runs:
                        self._arrived(moving[str(run.id)], run.state)

    def _arrived(self, track: BareTrack, state: Any) -> None:
        if state is None:
            return
        kind, key = state.type.value, state.state_details.pause_key
        expected = f"gate-{track.gates_passed}"
        if kind == "PAUSED" and key != expected:
            return  # still the state it was resumed from
        at = state.timestamp.timestamp()
        with self.changed:
            if kind not in {"PAUSED", "COMPLETED"}:
                track.error, track.in_transit = f"run ended {kind}: {state.message}", False
            else:
                track.in_transit = False
                if track.resumes:
                    track.resumes[-1].paused_wall = at
                else:
                    track.first_paused_wall = at
                track.gates_passed += 1
                if kind == "COMPLETED" or track.gates_passed == self.suspends:
                    track.done_wall = at
                else:
                    assert self.pool is not None
                    self.pool.submit(URGENT, lambda clients: self._resume(clients, track))
            self.progress_at = time.monotonic()
            self.changed.notify_all()

    def finished(self) -> int:
        return sum(1 for t in self.tracks if t.done_wall is not None or t.error)

    def run(self, concurrency: int, timeout: float, stall: float) -> tuple[float, float]:
        """Create every run, resume each at each gate; (start, end) monotonic."""

        def stray(exc: BaseException) -> None:
            with self.changed:
                self.stray_errors.append(f"{type(exc).__name__}: {exc}")
                self.progress_at = time.monotonic()
                self.changed.notify_all()

        self.pool = ClientPool(concurrency, stray)
        stop = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(stop,), name="watcher", daemon=True)
        watcher.start()
        start, start_wall = time.monotonic(), time.time()
        try:
            with self.pool.running() as pool:
                for track in self.tracks:
                    pool.submit(LATER, functools.partial(self._create, track=track))
                wait_until(
                    self.changed,
                    self.finished,
                    len(self.tracks),
                    "runs",
                    start,
                    timeout,
                    stall,
                    self,
                )
        finally:
            stop.set()
            watcher.join(timeout=30)
        if self.stray_errors:
            raise BenchError(f"client errors: {self.stray_errors[:3]}")
        end_wall = max((t.done_wall for t in self.tracks if t.done_wall), default=time.time())
        return start, start + (end_wall - start_wall)


# --------------------------------------------------------------------------- figures


def nearest_rank(values: Sequence[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(quantile * len(ordered))) - 1]


@dataclass
class PhaseResult:
    """The figures of one scenario (ours or the baseline)."""

    name: str
    count: int
    done: int
    failures: list[str]
    wall: float
    latencies: list[float]  # approval POST (resume call) -> next email (next PAUSED state)
    to_first_gate: list[float]  # submission (creation) -> first gate
    call_seconds: list[float]  # how long each approval POST (resume call) took
    after_call: list[float]  # from the POST's answer (the call's return) to the next gate
    memory: MemoryPeaks
    other_runs: dict[str, int]  # runs of other deployments on the pool during the phase

    @property
    def per_minute(self) -> float:
        return self.done / self.wall * 60 if self.wall > 0 else 0.0


def ours_result(
    load: DealsUnderLoad, window: tuple[float, float], memory: MemoryPeaks, other: dict[str, int]
) -> PhaseResult:
    tracks = list(load.tracks.values())
    approvals = [a for t in tracks for a in t.approvals]
    return PhaseResult(
        name="ours",
        count=len(tracks),
        done=sum(1 for t in tracks if t.done_at is not None),
        failures=[f"{t.deal_id}: {t.error}" for t in tracks if t.error],
        wall=window[1] - window[0],
        latencies=[
            a.next_email_at - a.post_start
            for a in approvals
            if a.next_email_at is not None and a.post_start is not None
        ],
        to_first_gate=[
            t.first_email_at - t.submit_start
            for t in tracks
            if t.first_email_at is not None and t.submit_start is not None
        ],
        call_seconds=[
            a.post_end - a.post_start
            for a in approvals
            if a.post_end is not None and a.post_start is not None
        ],
        after_call=[
            a.next_email_at - a.post_end
            for a in approvals
            if a.next_email_at is not None and a.post_end is not None
        ],
        memory=memory,
        other_runs=other,
    )


def bare_result(
    load: BareUnderLoad, window: tuple[float, float], memory: MemoryPeaks, other: dict[str, int]
) -> PhaseResult:
    resumes = [r for t in load.tracks for r in t.resumes]
    return PhaseResult(
        name="baseline",
        count=len(load.tracks),
        done=sum(1 for t in load.tracks if t.done_wall is not None),
        failures=[f"run {t.run_id}: {t.error}" for t in load.tracks if t.error],
        wall=window[1] - window[0],
        latencies=[r.paused_wall - r.start_wall for r in resumes if r.paused_wall is not None],
        to_first_gate=[
            t.first_paused_wall - t.create_start_wall
            for t in load.tracks
            if t.first_paused_wall is not None and t.create_start_wall is not None
        ],
        call_seconds=[r.end - r.start for r in resumes if r.end is not None],
        after_call=[
            r.paused_wall - (r.start_wall + r.end - r.start)
            for r in resumes
            if r.paused_wall is not None and r.end is not None
        ],
        memory=memory,
        other_runs=other,
    )


def other_runs_between(start_wall: float, end_wall: float, ours: Sequence[str]) -> dict[str, int]:
    """Runs of the pool's other deployments (the scheduled sweeps and reports) that
    started in the window: they share the workers and the CPU with the measured runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime
    from prefect.client.schemas.sorting import DeploymentSort, FlowRunSort

    window = FlowRunFilter(
        start_time=FlowRunFilterStartTime(
            after_=dt.datetime.fromtimestamp(start_wall, dt.UTC),
            before_=dt.datetime.fromtimestamp(end_wall, dt.UTC),
        )
    )
    counts: dict[str, int] = {}
    with get_client(sync_client=True) as client:
        # Prefect 3.8.8's server refuses a null "sort" (422): every query names one.
        deployments = client.read_deployments(limit=50, sort=DeploymentSort.NAME_ASC)
        names = {d.id: d.name for d in deployments}
        offset = 0
        while True:
            runs = client.read_flow_runs(
                flow_run_filter=window, sort=FlowRunSort.ID_DESC, limit=200, offset=offset
            )
            for run in runs:
                name = names.get(run.deployment_id) if run.deployment_id else None
                if name is not None and name not in ours:
                    counts[name] = counts.get(name, 0) + 1
            if len(runs) < 200:
                return counts
            offset += 200


def mib(value: float) -> str:
    return f"{value / MIB:.0f}"


def latency_cells(values: Sequence[float]) -> list[str]:
    if not values:
        return ["0", "-", "-", "-", "-"]
    st = stats_of(values)  # median, nearest-rank p95, min, max
    return [
        str(st.n),
        f"{st.median:.2f}",
        f"{st.p95:.2f}",
        f"{nearest_rank(values, 0.99):.2f}",
        f"{st.high:.2f}",
    ]


def ratio(ours: float, base: float) -> str:
    return f"{ours / base:.2f}" if base > 0 else "-"


def call_table(phases: Sequence[PhaseResult]) -> str:
    """The latency split at the moment the approval POST (resume call) returned."""
    rows = []
    for phase in phases:
        call = "approval POST" if phase.name == "ours" else "`resume_flow_run`"
        rows.append([f"{phase.name}: the {call} itself", *latency_cells(phase.call_seconds)])
        rows.append([f"{phase.name}: its answer -> next gate", *latency_cells(phase.after_call)])
    return table(["", "n", "median s", "p95 s", "p99 s", "max s"], rows)


def figures_tables(phases: Sequence[PhaseResult]) -> tuple[str, str]:
    rows = []
    for phase in phases:
        first = f"{statistics.median(phase.to_first_gate):.2f}" if phase.to_first_gate else "-"
        rows.append(
            [
                phase.name,
                f"{phase.done}/{phase.count}",
                f"{phase.wall:.1f}",
                f"{phase.per_minute:.1f}",
                *latency_cells(phase.latencies),
                first,
            ]
        )
    if len(phases) == 2 and phases[0].latencies and phases[1].latencies:
        ours, base = phases
        ol, bl = ours.latencies, base.latencies
        rows.append(
            [
                "ratio ours/baseline",
                "",
                ratio(ours.wall, base.wall),
                ratio(ours.per_minute, base.per_minute),
                "",
                ratio(statistics.median(ol), statistics.median(bl)),
                ratio(nearest_rank(ol, 0.95), nearest_rank(bl, 0.95)),
                ratio(nearest_rank(ol, 0.99), nearest_rank(bl, 0.99)),
                ratio(max(ol), max(bl)),
                "",
            ]
        )
    main = table(
        [
            "scenario",
            "done",
            "wall s",
            "per minute",
            "latency n",
            "median s",
            "p95 s",
            "p99 s",
            "max s",
            "to first gate, median s",
        ],
        rows,
    )
    memory = table(
        [
            "scenario",
            "samples",
            "Prefect server",
            "workers + flow-run processes (sum)",
            "worker processes alone (sum)",
            "one flow-run process (max)",
            "flow-run processes at once (max)",
            "web service (all processes)",
        ],
        [
            [
                p.name,
                str(p.memory.samples),
                mib(p.memory.server),
                mib(p.memory.workers_total),
                mib(p.memory.workers_own),
                mib(p.memory.flow_process),
                str(p.memory.flow_processes),
                mib(p.memory.web),
            ]
            for p in phases
        ],
    )
    return main, memory


def command_of(script: str, argv: Sequence[str]) -> str:
    """How this run was started (approval_latency.command_line names its own script)."""
    return " ".join([".venv/bin/python", script, *argv])


@dataclass(frozen=True)
class RunInfo:
    argv: list[str]
    started: dt.datetime
    seconds: float
    loads: tuple[float, float]
    code: tuple[str, str]
    example: str
    route: RouteInfo
    concurrency: int
    pool_limit: int


def render_section(info: RunInfo, phases: Sequence[PhaseResult]) -> str:
    main_table, memory_table = figures_tables(phases)
    split_table = call_table(phases)
    commit = info.code[0] if info.code[0] == info.code[1] else " -> ".join(info.code)
    minutes, rest = divmod(round(info.seconds), 60)
    ours = phases[0]
    gates = ", ".join(info.route.gates)
    notes = [
        "Latency: ours, from the start of an approval POST to the arrival at this "
        "script's SMTP server of the deal's next email (the next gate's request, or the "
        "delivery kickoff); baseline, from the start of a `resume_flow_run` call to the "
        "timestamp of the run's next PAUSED state (seen by a poll every "
        f"{STATE_POLL_SECONDS:.2f} s; the poll only triggers the next resume). "
        "p95 and p99 are nearest-rank.",
        "A POST is posted as soon as its request email arrives, before the run has "
        "suspended; the web service waits (up to 10 s) for the run to reach the gate, so the "
        "POST's own time includes the moment between the email and the suspend, which an "
        "approver never sees, while the baseline resumes a run only once it is PAUSED. The "
        "second table splits each latency at the moment the call returned.",
        "Memory: resident set sizes from /proc every 0.5 s, each role's process tree summed "
        "per sample; a flow-run process is a worker's child with its own children. Peaks "
        "are over the phase; MiB.",
        "The baseline runs after ours on the same stack, with ours' deals still waiting "
        "(suspended at acceptance).",
        "Prefect's `suspend_flow_run` sets the PAUSED state first and stores the input "
        'schema after it; a resume in between is refused ("schema not found") and tried '
        "again (`dealflow.prefect_api.resume_with_input`, used by the web service and here), "
        "so a call made as soon as a run is PAUSED includes that moment, longer when the "
        "CPU is busy.",
    ]
    most = max(p.memory.flow_processes for p in phases)
    if most > info.pool_limit:
        notes.append(
            f"Up to {most} flow-run processes at once with the pool capped at "
            f"{info.pool_limit} runs: a run frees its slot when it is PAUSED, while its "
            "process is still storing the input schema and exiting, and the next run's "
            "process starts meanwhile. Size memory for more processes than the limit."
        )
    for phase in phases:
        if phase.other_runs:
            runs = ", ".join(f"{n} x {name}" for name, n in sorted(phase.other_runs.items()))
            notes.append(f"Scheduled runs that shared the workers during {phase.name}: {runs}.")
        if phase.failures:
            shown = "; ".join(phase.failures[:5])
            notes.append(f"**{len(phase.failures)} failed in {phase.name}**: {shown}")
    notes_text = "\n".join(f"- {note}" for note in notes)
    return f"""{SECTION_TITLE}

{ours.count} deals submitted with `POST /api/deals` and approved by a load script
through the approval links of their emails (the page's form, `decision=approve`), on
the production path (docs/deployment.md): Prefect's server and Dealflow on PostgreSQL,
a process work pool capped at {info.pool_limit} runs at once, two `prefect worker` processes
polling every second, the web service as two uvicorn processes. {info.concurrency}
concurrent HTTP clients; approvals go before submissions. The baseline is a bare flow
with as many suspends and no work (`bare_suspends` in bench/load.py) on the same pool
and workers, its runs created and resumed with `resume_flow_run` by as many clients.

- Command: `{command_of(SCRIPT, info.argv)}`
- Code: commit {commit}
- Date: {info.started:%Y-%m-%d %H:%M} UTC; the whole run took {minutes} min {rest:02d} s
- Machine: {machine()}; 1-minute load average {info.loads[0]:.2f} at the start, {info.loads[1]:.2f} at the end
- Deal: {info.example}; route `{info.route.rule}`: {gates}, then the acceptance wait
  ({len(info.route.gates) + 1} suspends per deal; the baseline suspends as often)

{main_table}

The same latency, split where the approval POST (the `resume_flow_run` call) returned:

{split_table}

Peak memory, MiB:

{memory_table}

{notes_text}
"""


# --------------------------------------------------------------------------- main


def run_ours(
    stack: Stack,
    inbox: ListeningInbox,
    plan: BenchPlan,
    deals: list[dict[str, Any]],
    args: argparse.Namespace,
) -> tuple[DealsUnderLoad, tuple[float, float]]:
    load = DealsUnderLoad(deals, stack.config.web_url, plan.api_key)
    inbox.listeners.append(load.on_email)
    say(f"ours: submitting {len(deals)} deals ...")
    try:
        window = load.run(args.concurrency, phase_timeout(args), args.stall_timeout)
    finally:
        inbox.listeners.remove(load.on_email)
    say(f"ours: {load.finished()} deals done in {window[1] - window[0]:.1f}s")
    return load, window


def run_phases(
    stack: Stack,
    inbox: ListeningInbox,
    plan: BenchPlan,
    deals: list[dict[str, Any]],
    args: argparse.Namespace,
) -> tuple[list[PhaseResult], dict[str, Any]]:
    """Ours, then (unless skipped) the baseline with as many suspends, on one stack and
    under one memory sampler; their figures and the raw samples."""
    deployment_id = None if args.skip_baseline else register_baseline()
    suspends = len(route_of(deals[0], "the deal").gates) + 1
    roles = stack_roles(stack)
    sampler = MemorySampler(roles).start()
    bare: BareUnderLoad | None = None
    try:
        began = time.time()
        ours, window = run_ours(stack, inbox, plan, deals, args)
        other = other_runs_between(began, time.time(), [deal_deployment_name()])
        phases = [ours_result(ours, window, memory_peaks(sampler.between(*window)), other)]
        if deployment_id is not None:
            wait_workers_idle(roles)  # ours' last runs suspended and gone
            began = time.time()
            bare, window = run_baseline(len(deals), suspends, deployment_id, args)
            other = other_runs_between(began, time.time(), [deal_deployment_name(), BASELINE_NAME])
            phases.append(bare_result(bare, window, memory_peaks(sampler.between(*window)), other))
    finally:
        sampler.stop()
    return phases, raw_results(ours, bare, sampler)


def deal_deployment_name() -> str:
    from models.settings import get_settings

    return get_settings().deployment.split("/")[-1]


def run_baseline(
    count: int, suspends: int, deployment_id: uuid.UUID, args: argparse.Namespace
) -> tuple[BareUnderLoad, tuple[float, float]]:
    load = BareUnderLoad(deployment_id, count, suspends)
    say(f"baseline: creating {count} runs of {BASELINE_DEPLOYMENT} ...")
    window = load.run(args.concurrency, phase_timeout(args), args.stall_timeout)
    say(f"baseline: {load.finished()} runs done in {window[1] - window[0]:.1f}s")
    return load, window


class ListeningInbox(TimedInbox):
    """TimedInbox that also hands every message to its listeners as it arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners: list[Callable[[Received], None]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        received = self.received[-1]  # appended just now: nothing else ran in between
        for listener in list(self.listeners):
            listener(received)
        return reply


def phase_timeout(args: argparse.Namespace) -> float:
    return float(args.timeout) if args.timeout else 600.0 + 10.0 * args.deals


def raw_results(
    ours: DealsUnderLoad, bare: BareUnderLoad | None, sampler: MemorySampler
) -> dict[str, Any]:
    return {
        "deals": [asdict(t) for t in ours.tracks.values()],
        "baseline": [asdict(t) for t in bare.tracks] if bare else [],
        "memory": [
            {**asdict(s), "flow": {str(k): v for k, v in s.flow.items()}} for s in sampler.samples
        ],
    }


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--deals", type=int, default=1000, help="Deals (and baseline runs).")
    parser.add_argument(
        "--concurrency", type=int, default=10, help="Concurrent HTTP (Prefect API) clients."
    )
    parser.add_argument(
        "--pool-limit", type=int, default=10, help="The work pool's concurrency limit."
    )
    parser.add_argument(
        "--example",
        help=f"The deal to copy (JSON or YAML); default {DEFAULT_EXAMPLE} with {SMALL_SEATS} "
        "seats, which needs the manager's gate only.",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="Measure ours only.")
    parser.add_argument("--out", type=Path, help="Write every raw sample to this JSON file.")
    parser.add_argument(
        "--timeout", type=float, help="Seconds per phase (default 600 + 10 per deal)."
    )
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=300.0,
        help="Give up when no deal or run moved for this many seconds.",
    )
    parser.add_argument(
        "--no-results", action="store_true", help="Print the tables only; leave RESULTS.md alone."
    )
    parser.add_argument("--keep-data", action="store_true", help="Keep the stack's data folder.")
    args = parser.parse_args(argv)
    if args.deals < 1 or args.concurrency < 1 or args.pool_limit < 1:
        parser.error("--deals, --concurrency and --pool-limit must be at least 1")
    out = args.out.resolve() if args.out else None

    plan = plan_stack("bench_load", args.pool_limit)
    signal.signal(signal.SIGTERM, raise_interrupt)
    started, began = dt.datetime.now(dt.UTC), time.monotonic()
    load_start, code_start = os.getloadavg()[0], checkout()
    template, example = load_example(args.example)
    route = route_of(template, example)
    say(f"deal: {example}; route {route.rule}: {', '.join(route.gates)} (+ acceptance)")
    inbox = ListeningInbox()
    with running_stack(plan, inbox, args.keep_data) as stack:
        phases, raw = run_phases(stack, inbox, plan, fresh_copies(template, args.deals), args)
    if out:
        out.write_text(json.dumps(raw, indent=1))
        say(f"raw samples written to {out}")
    info = RunInfo(
        argv=list(argv),
        started=started,
        seconds=time.monotonic() - began,
        loads=(load_start, os.getloadavg()[0]),
        code=(code_start, checkout()),
        example=example,
        route=route,
        concurrency=args.concurrency,
        pool_limit=args.pool_limit,
    )
    section = render_section(info, phases)
    say("\n" + section)
    if not args.no_results:
        write_results(section, SECTION_TITLE)
        say(f"Written to {(PROJECT_ROOT / 'bench' / 'RESULTS.md').relative_to(PROJECT_ROOT)}")
    if any(p.failures for p in phases):
        raise BenchError("some deals or runs failed: see the notes above")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except BenchError as exc:
        sys.exit(f"bench: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
