"""Approval latency and CPU: from an approver's click to the next approver's email.

Measures, on a fresh local stack per worker path (``dealflow.stack.local.Stack``: Prefect
and Dealflow on SQLite, one ``dealflow worker`` polling every second, as ``make demo``):

* ours: the manager's approval POST to the web service -> the director's approval request
  arriving at the SMTP server (and -> the run PAUSED at gate-director), with the worker
  starting runs warm (``warm``) or as fresh interpreters (``cold``: ``--cold``);
* bare baseline: ``resume_flow_run`` of a flow that does nothing but suspend twice
  (bench/bare_flow.py) on Prefect's stock process path (a process work pool with no
  command, a plain ``prefect worker start`` on the same server and settings) -> its run
  PAUSED at gate-b, polled every 50 ms;
* CPU-seconds per resume: the CPU time of every process of the stack (the Prefect
  server, the web service, the workers and all they started, from /proc) from the call
  until no process of the run is left, less what the stack spends idle in that time.

Deals and baseline runs are all started first and left suspended at their first gate;
then each is resumed one at a time, ours and the baseline alternating, each only once
no flow-run process of the previous one is left, so the figures are latency, not
throughput. Each worker path runs in a child process of this script with its own stack
in a temporary folder, so that Prefect reads its settings for that stack only.

    .venv/bin/python bench/approval_latency.py [--deals 20] [--paths warm,cold]
                                               [--json FILE]

Prints the tables and writes them to bench/RESULTS.md (only this benchmark's section);
``--json FILE`` also writes the medians: {"ours": {"median_s", "p95_s",
"cpu_s_per_resume"}, "baseline": {...}} (and "ours_cold" when the cold path ran).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECTION_TITLE = "## Approval latency (bench/approval_latency.py)"
SCRIPT = "bench/approval_latency.py"
BARE_FLOW = "bench/bare_flow.py"  # relative to PROJECT_ROOT
# The bare flow's deployments: Prefect's stock process path, and (beside the warm stack)
# the same flow started warm by a `dealflow worker` of a pool of its own.
BARE = {"bare": ("bare", "bare-gates"), "bare-warm": ("bare-warm", "bare-gates-warm")}
LAUNCHER = "python -m dealflow.warm.launch"  # as prefect.yaml gives our deployments
MANAGER = "mara.keller@example.com"
DIRECTOR = "dana.whitfield@example.com"
LOCKED = b"sqlite3.OperationalError: database is locked"  # once per error in Prefect's log
POLL_INTERVAL = 0.05
WAIT_TIMEOUT = 300.0  # for all runs to park at their first gate
RESUME_TIMEOUT = 120.0  # for one resumed run to reach its next gate
IDLE_SECONDS = 10.0  # how long the stack's idle CPU is measured
PATHS = ("warm", "cold")

# bench/ and harness/ are no installed packages: they are imported from the checkout,
# so their imports follow this.
# ruff: noqa: E402
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.process_trees import TICKS, stat_fields
from bench.production_stack import POSTGRES_SERVER
from bench.results import CODE_CHANGE_SPELLED, RunClock, RunRecord, stats_of, table, write_results
from bench.scratch_databases import create_databases, drop_databases
from bench.script import BenchError, raise_interrupt, run_main, say
from bench.timed_inbox import Received, TimedInbox
from harness.mail import decide, link_in, to
from harness.ports import free_port
from harness.runs import wait_for_state, wait_until_no_process

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

    from dealflow.stack.local import Stack


# --------------------------------------------------------------------------- samples


SEGMENTS = (
    "call returned",
    "request -> Scheduled",
    "Scheduled -> Pending",
    "Pending -> Running",
    "Running -> email",
    "Running -> Paused",
)


@dataclass
class Sample:
    scenario: str  # "ours", "bare" (stock process path) or "bare-warm"
    path: str  # the worker path of the stack it ran on: "warm" or "cold"
    run_id: str
    latency: float  # ours: POST -> next email at SMTP; bare: resume -> PAUSED (polled)
    to_paused: float  # POST or resume -> PAUSED at the next gate (polled)
    cpu_seconds: float = 0.0  # the stack's CPU for this resume, idle time taken out
    cpu_by_role: dict[str, float] = field(default_factory=dict)  # the same, per process
    segments: dict[str, float] = field(default_factory=dict)
    warmup: bool = False  # resumed first, after the stack started: not in the figures


# --------------------------------------------------------------------------- CPU


class StackCpu:
    """CPU-seconds of every process in the given sessions (each process of the stack
    starts one: its role), including children they have reaped: a flow-run process counts
    once it ended as well as while it runs."""

    def __init__(self, sessions: dict[int, str]) -> None:
        self.sessions = sessions
        self.idle_per_second: dict[str, float] = {}

    def now(self) -> dict[str, float]:
        ticks = dict.fromkeys(self.sessions.values(), 0)
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                fields = stat_fields(entry.name)
            except OSError:
                continue  # it ended meanwhile
            role = self.sessions.get(int(fields[3]))  # proc(5) field 6, the session
            if role is not None:
                ticks[role] += sum(int(value) for value in fields[11:15])  # utime .. cstime
        return {role: n / TICKS for role, n in ticks.items()}

    def measure_idle(self, seconds: float) -> None:
        before, began = self.now(), time.monotonic()
        time.sleep(seconds)
        after, took = self.now(), time.monotonic() - began
        self.idle_per_second = {role: (after[role] - before[role]) / took for role in after}

    def spent(self, before: dict[str, float], since: float) -> dict[str, float]:
        """CPU-seconds per role since ``before`` (read at monotonic ``since``), idle taken
        out."""
        after, took = self.now(), time.monotonic() - since
        return {
            role: after[role] - before[role] - self.idle_per_second.get(role, 0.0) * took
            for role in after
        }


# --------------------------------------------------------------------------- one scenario


def prefect_command(stack: Stack, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, *args], cwd=PROJECT_ROOT, env=stack.env, capture_output=True, timeout=300
    )
    if result.returncode != 0:
        raise BenchError(f"{' '.join(args)} failed:\n{(result.stdout + result.stderr).decode()}")


def start_bare_workers(stack: Stack, warm: bool) -> dict[str, subprocess.Popen[bytes]]:
    """The baseline's stock process path: a work pool of its own with no command, the bare
    flow deployed to it, and a plain ``prefect worker start`` with the stack's settings;
    beside a warm stack, also the bare flow on a pool of its own served by a ``dealflow
    worker``, its deployment given the launcher as its command."""
    started = {}
    for scenario in ("bare", "bare-warm") if warm else ("bare",):
        pool, name = BARE[scenario]
        prefect_command(
            stack,
            "-m",
            "prefect",
            "--no-prompt",
            "work-pool",
            "create",
            pool,
            "--type",
            "process",
            "--overwrite",
        )
        command = [LAUNCHER] if scenario == "bare-warm" else []
        prefect_command(stack, BARE_FLOW, "deploy", pool, name, *command)
        worker = (
            ["-m", "dealflow", "worker", "--pool", pool, "--name", f"{scenario}-worker"]
            if scenario == "bare-warm"
            else [
                "-m",
                "prefect",
                "worker",
                "start",
                "--pool",
                pool,
                "--name",
                f"{scenario}-worker",
            ]
        )
        stack.logs.mkdir(parents=True, exist_ok=True)
        with (stack.logs / f"{scenario}-worker.log").open("ab") as log:
            started[f"{scenario}-worker"] = subprocess.Popen(
                [sys.executable, *worker],
                cwd=PROJECT_ROOT,
                env=stack.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    return started


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_paused(client: SyncPrefectClient, run_id: str, key: str) -> float:
    """The monotonic time at which the run was first seen PAUSED under ``key``."""
    deadline = time.monotonic() + RESUME_TIMEOUT
    while True:
        run = client.read_flow_run(uuid.UUID(run_id))
        seen = time.monotonic()
        state = run.state
        if state is not None:
            if state.type.value == "PAUSED" and state.state_details.pause_key == key:
                return seen
            if state.is_final():
                raise BenchError(f"run {run_id} ended {state.type.value}: {state.message}")
        if seen > deadline:
            raise BenchError(f"run {run_id} not paused at {key} within {RESUME_TIMEOUT:.0f}s")
        time.sleep(POLL_INTERVAL)


def segments_since(
    client: SyncPrefectClient, run_id: str, start_wall: float, email_wall: float | None
) -> dict[str, float]:
    """Where the time went, from the timestamps of the run's states after ``start_wall``."""
    states = sorted(
        (s for s in client.read_flow_run_states(uuid.UUID(run_id)) if s.timestamp is not None),
        key=lambda s: s.timestamp.timestamp(),
    )
    first: dict[str, float] = {}
    for state in states:
        at = state.timestamp.timestamp()
        if at >= start_wall:
            first.setdefault(state.type.value, at)
    scheduled, pending = first.get("SCHEDULED"), first.get("PENDING")
    running, paused = first.get("RUNNING"), first.get("PAUSED")
    if None in (scheduled, pending, running, paused):
        raise BenchError(f"run {run_id}: unexpected states after the resume: {sorted(first)}")
    assert scheduled and pending and running and paused
    segments = {
        "request -> Scheduled": scheduled - start_wall,
        "Scheduled -> Pending": pending - scheduled,
        "Pending -> Running": running - pending,
        "Running -> Paused": paused - running,
    }
    if email_wall is not None:
        segments["Running -> email"] = email_wall - running
    return segments


def run_scenario(
    path: str, deals: int, warmup: int, out: Path, keep_data: bool, postgres: bool = False
) -> None:
    """One fresh stack whose worker takes ``path``; raw samples to ``out``. With
    ``postgres``, Prefect and Dealflow on databases of its own on the production path's
    PostgreSQL (dropped at the end) instead of SQLite files."""
    signal.signal(signal.SIGTERM, raise_interrupt)
    from aiosmtpd.controller import Controller

    from dealflow.stack.config import StackConfig, stack_env
    from dealflow.stack.local import Stack

    data_dir = Path(tempfile.mkdtemp(prefix="dealflow-bench-"))
    databases = {role: f"latency_{os.getpid()}_{role}" for role in ("dealflow", "prefect")}
    on_postgres: dict[str, Any] = {}
    if postgres:
        create_databases(POSTGRES_SERVER, list(databases.values()))
        on_postgres = {
            "database_url": f"{POSTGRES_SERVER}/{databases['dealflow']}",
            "prefect_database_url": POSTGRES_SERVER.replace("+psycopg", "+asyncpg")
            + f"/{databases['prefect']}",
        }
    config = StackConfig(
        data_dir=data_dir,
        prefect_port=free_port(),
        web_port=free_port(),
        smtp_port=free_port(),
        mail_catcher=False,
        warm=path == "warm",
        # Every approval of the benchmark is clicked from this one address.
        extra_env={"DEALFLOW_LINK_REQUESTS_PER_MINUTE": "1000000"},
        **on_postgres,
    )
    # Before Prefect or Dealflow's settings are first read in this process.
    os.environ.pop("DEALFLOW_DATABASE_URL", None)
    os.environ.update(stack_env(config))

    inbox = TimedInbox()
    controller = Controller(inbox, hostname=config.host, port=config.smtp_port)
    controller.start()
    stack = Stack(config)
    bare_workers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        began = time.monotonic()
        stack.start()
        bare_workers = start_bare_workers(stack, warm=path == "warm")
        say(f"[{path}] stack up in {time.monotonic() - began:.0f}s")
        parked = park(
            path, warmup + deals, inbox, [s for s in BARE if f"{s}-worker" in bare_workers]
        )
        roles = {**stack.processes, **bare_workers}
        cpu = StackCpu({process.pid: role for role, process in roles.items()})
        cpu.measure_idle(IDLE_SECONDS)
        server_log = stack.logs / "prefect.log"
        mark = server_log.stat().st_size
        samples = measure(path, deals, warmup, inbox, parked, cpu)
        with server_log.open("rb") as log:
            parking, measuring = log.read(mark), log.read()
        out.write_text(
            json.dumps(
                {
                    "samples": [asdict(s) for s in samples],
                    "locked": {
                        "parking": parking.count(LOCKED),
                        "measuring": measuring.count(LOCKED),
                    },
                    "idle_cpu_per_second": sum(cpu.idle_per_second.values()),
                }
            )
        )
    except Exception:
        for name in [*stack.processes, *bare_workers]:
            print(f"--- {name} log (tail) ---\n{stack.log_tail(name)}", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        for worker in bare_workers.values():
            stop_process(worker)
        stack.stop()
        controller.stop()
        if keep_data:
            print(f"data kept in {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
            if postgres:
                drop_databases(POSTGRES_SERVER, list(databases.values()))


# (deal id, its run id), and a run of each bare deployment by its scenario
Parked = list[tuple[tuple[str, str], dict[str, str]]]


def park(path: str, count: int, inbox: TimedInbox, bare_scenarios: list[str]) -> Parked:
    """Start ``count`` deals and as many baseline runs; return once all wait at their
    first gate and no process of theirs is left."""
    from prefect.client.orchestration import get_client

    from dealflow.intake.submit import parse_deal, submit

    example = "examples/acme.json"
    template = json.loads((PROJECT_ROOT / example).read_text())
    began = time.monotonic()
    ours: list[tuple[str, str]] = []
    for _ in range(count):
        data = {**template, "deal_id": f"B{uuid.uuid4().hex[:8].upper()}-{template['deal_id']}"}
        submission = submit(parse_deal(data, example))
        ours.append((submission.deal_id, submission.flow_run_id))
    bare: list[dict[str, str]] = [{} for _ in range(count)]
    with get_client(sync_client=True) as client:
        for scenario in bare_scenarios:
            deployment = client.read_deployment_by_name(f"bare-gates/{BARE[scenario][1]}")
            for runs in bare:
                runs[scenario] = str(client.create_flow_run_from_deployment(deployment.id).id)
    for deal_id, run_id in ours:
        inbox.wait_for(to(MANAGER, "Approval needed", deal_id), WAIT_TIMEOUT)
        wait_for_state(run_id, "PAUSED", timeout=WAIT_TIMEOUT, key="gate-manager")
    bare_ids = [run_id for runs in bare for run_id in runs.values()]
    for run_id in bare_ids:
        wait_for_state(run_id, "PAUSED", timeout=WAIT_TIMEOUT, key="gate-a")
    for run_id in [r for _, r in ours] + bare_ids:
        wait_until_no_process(run_id, timeout=60)
    say(
        f"[{path}] {count} deals at gate-manager and {len(bare_ids)} bare runs at gate-a "
        f"in {time.monotonic() - began:.0f}s; resuming one at a time"
    )
    return list(zip(ours, bare, strict=True))


def measure(
    path: str, deals: int, warmup: int, inbox: TimedInbox, parked: Parked, cpu: StackCpu
) -> list[Sample]:
    """Resume the parked deals and baseline runs one at a time, alternating: each only
    once no process of the one before is left."""
    from prefect.client.orchestration import get_client

    samples: list[Sample] = []
    with get_client(sync_client=True) as client:
        for index, ((deal_id, run_id), bare_ids) in enumerate(parked):
            taken = [resume_ours(client, inbox, path, deal_id, run_id, cpu)]
            taken += [
                resume_bare(client, scenario, path, bare_id, cpu)
                for scenario, bare_id in bare_ids.items()
            ]
            for sample in taken:
                sample.warmup = index < warmup
            samples += taken
            label = "warm-up" if index < warmup else f"{index + 1 - warmup:>3}/{deals}"
            say(
                f"[{path}] {label}  "
                + "  ".join(
                    f"{s.scenario} {s.latency:5.2f}s {s.cpu_seconds:5.2f} CPU-s" for s in taken
                )
            )
    return samples


def wait_for_email(
    client: SyncPrefectClient,
    inbox: TimedInbox,
    predicate: Callable[[EmailMessage], bool],
    run_id: str,
) -> Received:
    """The email the resumed run sends; if it is late, why (the run's state)."""
    try:
        return inbox.wait_for(predicate, timeout=30)  # no extra API calls while measuring
    except BenchError:
        pass
    deadline = time.monotonic() + RESUME_TIMEOUT - 30
    while True:
        state = client.read_flow_run(uuid.UUID(run_id)).state
        seen = f"{state.type.value} ({state.name})" if state else "without a state"
        if state is not None and state.is_final():
            raise BenchError(f"run {run_id} ended {seen} before its next email: see its log")
        if time.monotonic() > deadline:
            raise BenchError(
                f"run {run_id} sent no next email within {RESUME_TIMEOUT:.0f}s; it is {seen}: "
                "see the worker's log (was the code changed during the run?)"
            )
        try:
            return inbox.wait_for(predicate, timeout=2)
        except BenchError:
            pass


def resume_ours(
    client: SyncPrefectClient,
    inbox: TimedInbox,
    path: str,
    deal_id: str,
    run_id: str,
    cpu: StackCpu,
) -> Sample:
    """The manager approves by the emailed link; until the director's request arrives."""
    link = link_in(inbox.wait_for(to(MANAGER, "Approval needed", deal_id), WAIT_TIMEOUT).message)
    before = cpu.now()
    start, start_wall = time.monotonic(), time.time()
    response = decide(link, "approve", "bench")
    answered = time.monotonic() - start
    if response.status_code != 200 or "You approved this deal" not in response.text:
        raise BenchError(f"the approval of {deal_id} was answered {response.status_code}")
    request = wait_for_email(client, inbox, to(DIRECTOR, "Approval needed", deal_id), run_id)
    paused = wait_paused(client, run_id, "gate-director")
    wait_until_no_process(run_id, timeout=60)
    spent = cpu.spent(before, start)
    return Sample(
        "ours",
        path,
        run_id,
        latency=request.monotonic - start,
        to_paused=paused - start,
        cpu_seconds=sum(spent.values()),
        cpu_by_role=spent,
        segments={
            "call returned": answered,
            **segments_since(client, run_id, start_wall, request.wall),
        },
    )


def resume_bare(
    client: SyncPrefectClient, scenario: str, path: str, run_id: str, cpu: StackCpu
) -> Sample:
    """The baseline resumed the way web/decisions.py resumes a deal; until it pauses again."""
    from prefect.flow_runs import resume_flow_run

    before = cpu.now()
    start, start_wall = time.monotonic(), time.time()
    resume_flow_run(uuid.UUID(run_id), run_input={"approved": True})
    answered = time.monotonic() - start
    paused = wait_paused(client, run_id, "gate-b")
    wait_until_no_process(run_id, timeout=60)
    spent = cpu.spent(before, start)
    return Sample(
        scenario,
        path,
        run_id,
        latency=paused - start,
        to_paused=paused - start,
        cpu_seconds=sum(spent.values()),
        cpu_by_role=spent,
        segments={"call returned": answered, **segments_since(client, run_id, start_wall, None)},
    )


# --------------------------------------------------------------------------- report


def counted(samples: Sequence[Sample], scenario: str, path: str) -> list[Sample]:
    return [s for s in samples if s.scenario == scenario and s.path == path and not s.warmup]


def figures(group: Sequence[Sample]) -> dict[str, float]:
    latency = stats_of([s.latency for s in group])
    return {
        "median_s": round(latency.median, 3),
        "p95_s": round(latency.p95, 3),
        "cpu_s_per_resume": round(statistics.median(s.cpu_seconds for s in group), 3),
    }


def summary(samples: Sequence[Sample], paths: Sequence[str]) -> dict[str, dict[str, float]]:
    """What ``--json`` writes: ours on each path, the baseline (bare, stock path) of the
    first path's run, and the bare flow started warm when it ran."""
    found = {
        ("ours" if path == "warm" else f"ours_{path}"): figures(counted(samples, "ours", path))
        for path in paths
    }
    found["baseline"] = figures(counted(samples, "bare", paths[0]))
    if bare_warm := counted(samples, "bare-warm", "warm"):
        found["bare_warm"] = figures(bare_warm)
    return found


SCENARIO_ROWS = {
    "ours": ("ours, {path}: POST -> director's email at SMTP", "latency"),
    "ours-paused": ("ours, {path}: POST -> run PAUSED at gate-director", "to_paused"),
    "bare-warm": ("bare flow, warm (a `dealflow worker`): resume -> PAUSED at gate-b", "latency"),
    "bare": ("bare baseline, stock process path: resume -> PAUSED at gate-b", "latency"),
}


def results_tables(samples: Sequence[Sample], paths: Sequence[str]) -> tuple[str, str, str]:
    rows: list[list[str]] = []
    breakdown: list[list[str]] = []
    roles: list[list[str]] = []
    for path in paths:
        base = figures(counted(samples, "bare", path))
        for row, (label, measure) in SCENARIO_ROWS.items():
            group = counted(samples, row.removesuffix("-paused"), path)
            if not group:
                continue
            st = stats_of([getattr(s, measure) for s in group])
            cpu = statistics.median(s.cpu_seconds for s in group)
            rows.append(
                [
                    label.format(path=path),
                    str(st.n),
                    *(f"{v:.2f}" for v in (st.median, st.p95, st.low, st.high)),
                    f"{st.median / base['median_s']:.2f}",
                    f"{cpu:.2f}",
                    f"{base['cpu_s_per_resume'] / cpu:.1f}" if cpu > 0 else "-",
                ]
            )
            if row.endswith("-paused"):
                continue
            name = f"{row}, beside {path}" if row != "ours" else f"ours, {path}"
            cells = []
            for segment in SEGMENTS:
                values = [s.segments[segment] for s in group if segment in s.segments]
                cells.append(f"{statistics.median(values):.2f}" if values else "-")
            breakdown.append([name, *cells])
            spent: dict[str, list[float]] = {}
            for sample in group:
                for role, seconds in sample.cpu_by_role.items():
                    spent.setdefault(role, []).append(seconds)
            roles.append(
                [
                    name,
                    ", ".join(
                        f"{role} {statistics.median(values):.2f}"
                        for role, values in sorted(spent.items())
                        if statistics.median(values) >= 0.005
                    ),
                ]
            )
    main_table = table(
        [
            "scenario",
            "n",
            "median s",
            "p95 s",
            "min s",
            "max s",
            "latency / baseline's (medians)",
            "CPU-s per resume (median)",
            "baseline's CPU / this",
        ],
        rows,
    )
    segment_table = table(["scenario", *SEGMENTS], breakdown)
    role_table = table(["scenario", "CPU-s per resume by process (medians)"], roles)
    return main_table, segment_table, role_table


def render_section(
    samples: Sequence[Sample],
    paths: Sequence[str],
    record: RunRecord,
    extras: dict[str, dict[str, float]],
    database: str = "SQLite",
) -> str:
    main_table, segment_table, role_table = results_tables(samples, paths)
    opening = record.header(SCRIPT, make_target="bench", code_change=CODE_CHANGE_SPELLED)
    notes = "\n".join(f"- {note}" for note in report_notes(samples, paths, extras, database))
    return f"""{SECTION_TITLE}

Time from the manager's approval (the HTTP POST of the form at the emailed link) to the
director's approval request arriving at the SMTP server, and the CPU it cost, against a
bare Prefect flow that only suspends twice (bench/bare_flow.py) on Prefect's stock
process path (a process work pool with no command, a plain `prefect worker start`),
resumed with `resume_flow_run` and polled every 50 ms until it is PAUSED at its second
gate. Ours runs as `make demo` does: one `dealflow worker` starting runs warm (forked
from the warm parent, docs/deployment.md) or, on a second stack, cold (`--cold`, each
run a fresh interpreter). One deal or run resumed at a time, ours and the baseline
alternating; workers poll every second; Prefect and Dealflow on {database}. CPU-seconds per
resume: every process of the stack (Prefect server, web service, workers and all they
started, read from /proc), from the call until no process of the run is left, less the
stack's idle CPU over the same time.

{opening}

{main_table}

Where the time goes: medians in seconds. "call returned" is when the POST was answered
(ours: the web service checked the link and the deal, stored the decision and resumed
the run) or `resume_flow_run` returned (baseline); the other columns come from the
timestamps of each run's Prefect states after that call began. The worker picks a
resumed run up at its next poll (Scheduled -> Pending), starts a process for it
(Pending -> Running: forked from the warm parent, or a fresh interpreter that imports
Prefect and the flow), and the run executes the flow from the top again.

{segment_table}

Where the CPU goes: each process of the stack with all it started (a worker's row holds
its flow-run processes and, for a `dealflow worker`, its warm parent and the runs forked
from it), idle taken out.

{role_table}

{notes}
"""


def report_notes(
    samples: Sequence[Sample],
    paths: Sequence[str],
    extras: dict[str, dict[str, float]],
    database: str = "SQLite",
) -> list[str]:
    sizes = sorted({len(counted(samples, "ours", p)) for p in paths})
    ranks = ", ".join(f"with {n} samples {_nearest_rank(n)}" for n in sizes)
    notes = [
        f"p95 is the nearest-rank percentile ({ranks}). Each ratio compares a row with the "
        "bare baseline measured beside it, on the same stack in the same run."
    ]
    idle = ", ".join(f"{p} {extras[p]['idle_cpu_per_second']:.2f}" for p in paths)
    notes.append(
        f"The stacks' idle CPU, taken out of every resume's figure: {idle} CPU-s per second "
        "(the Prefect server's loop services, the workers' polls)."
    )
    warmups = [f"{s.scenario} ({s.path}) {s.latency:.2f} s" for s in samples if s.warmup]
    if warmups:
        notes.append(
            "Not in the figures: the first deal and baseline run resumed after each stack "
            f"started (warm-up): {', '.join(warmups)}."
        )
    for path in paths:
        errors = extras[path]
        slow = [
            s
            for s in samples
            if s.path == path and not s.warmup and s.segments["call returned"] > 1.0
        ]
        if errors.get("measuring") or errors.get("parking") or slow:
            notes.append(
                f"{path}: Prefect's server ({database}) logged {errors.get('measuring', 0):.0f} "
                "failed state change(s) `database is locked` while samples were taken "
                f"({errors.get('parking', 0):.0f} while the runs were started and parked); calls "
                f"that took over 1 s: {len(slow)}."
            )
    return notes


def _nearest_rank(n: int) -> str:
    from_top = n - max(1, math.ceil(0.95 * n)) + 1
    if from_top == 1:
        return "the largest"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(from_top if from_top < 20 else from_top % 10, "th")
    return f"the {from_top}{suffix} largest"


# --------------------------------------------------------------------------- main


def run_child(
    path: str, deals: int, warmup: int, out: Path, keep_data: bool, postgres: bool
) -> None:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--deals",
        str(deals),
        "--warmup",
        str(warmup),
        "--scenario-path",
        path,
        "--scenario-out",
        str(out),
    ]
    if keep_data:
        command.append("--keep-data")
    if postgres:
        command.append("--postgres")
    child = subprocess.Popen(command, cwd=PROJECT_ROOT)
    try:
        code = child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)  # it stops its stack, then exits
        child.wait(timeout=120)
        raise
    if code != 0:
        raise BenchError(f"the {path} path failed (exit code {code})")


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--deals", type=int, default=20, help="Deals (and as many baseline runs) measured per path."
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="Deals (and baseline runs) resumed first and left out of the figures.",
    )
    parser.add_argument(
        "--paths",
        default=",".join(PATHS),
        help="The worker paths measured, each on its own stack: warm, cold or both (warm,cold).",
    )
    parser.add_argument("--json", type=Path, help="Also write the medians to this JSON file.")
    parser.add_argument(
        "--no-results", action="store_true", help="Print the tables only; leave RESULTS.md alone."
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="Keep the stacks' temporary data folders."
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="Prefect and Dealflow on PostgreSQL (databases of their own, dropped after), "
        "as on the production path, instead of the demo's SQLite.",
    )
    parser.add_argument("--raw", type=Path, help="Also write every sample to this JSON file.")
    parser.add_argument("--scenario-path", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--scenario-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if args.deals < 1 or args.warmup < 0:
        parser.error("--deals must be at least 1, --warmup at least 0")
    if args.postgres and not args.no_results and args.scenario_path is None:
        parser.error("--postgres measures beside the demo: give --no-results too")
    if not paths or any(p not in PATHS for p in paths):
        parser.error(f"--paths: a comma-separated list of {', '.join(PATHS)}, not {args.paths!r}")

    if args.scenario_path is not None:  # the child: one path on its own stack
        run_scenario(
            args.scenario_path,
            args.deals,
            args.warmup,
            args.scenario_out,
            args.keep_data,
            args.postgres,
        )
        return

    signal.signal(signal.SIGTERM, raise_interrupt)
    clock = RunClock(argv)
    samples: list[Sample] = []
    extras: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="dealflow-bench-") as scratch:
        for path in paths:
            out = Path(scratch) / f"{path}.json"
            run_child(path, args.deals, args.warmup, out, args.keep_data, args.postgres)
            result = json.loads(out.read_text())
            samples += [Sample(**raw) for raw in result["samples"]]
            extras[path] = {
                **result["locked"],
                "idle_cpu_per_second": result["idle_cpu_per_second"],
            }
    record = clock.stop()
    if args.raw:
        args.raw.write_text(json.dumps([asdict(s) for s in samples], indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary(samples, paths), indent=1) + "\n")
    if record.code[0] != record.code[1]:
        print(
            f"warning: the checkout changed during the run: {record.code[0]} -> {record.code[1]}",
            file=sys.stderr,
        )
    database = "PostgreSQL" if args.postgres else "SQLite"
    section = render_section(samples, paths, record, extras, database)
    say("\n" + section)
    if not args.no_results:
        write_results(section, SECTION_TITLE)


if __name__ == "__main__":
    run_main(main)
