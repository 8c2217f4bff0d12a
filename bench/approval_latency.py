"""Approval latency: from an approver's click to the next approver's email.

Measures, on one Prefect server per runner-poll setting:

* ours: the manager's approval POST to the web service -> the director's approval request
  arriving at the SMTP server (and, for comparison, -> the run PAUSED at gate-director);
* bare baseline: ``resume_flow_run`` of a flow that does nothing but suspend twice
  (bench/bare_flow.py, served by a second ``serve`` runner with the same settings) ->
  its run PAUSED at gate-b, polled every 50 ms.

Deals and baseline runs are all started first and left suspended at their first gate;
then each is resumed one at a time, ours and the baseline alternating, each only once
no flow-run process of the previous one is left, so the figures are latency, not
throughput. Each poll setting runs in a child process of this script with a fresh
stack (``dealflow.stack.local.Stack``) in a temporary folder, so that Prefect reads its
settings for that stack only.

    .venv/bin/python bench/approval_latency.py [--deals 20] [--compare-deals 10]
                                               [--no-compare-poll]

Prints the tables and writes them to bench/RESULTS.md (only this benchmark's section).
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
from typing import TYPE_CHECKING

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECTION_TITLE = "## Approval latency (bench/approval_latency.py)"
SCRIPT = "bench/approval_latency.py"
BARE_FLOW = "bench/bare_flow.py"  # relative to PROJECT_ROOT, the runners' working directory
BARE_DEPLOYMENT = "bare-gates/bare-gates"
MANAGER = "mara.keller@example.com"
DIRECTOR = "dana.whitfield@example.com"
LOCKED = b"sqlite3.OperationalError: database is locked"  # once per error in Prefect's log
POLL_INTERVAL = 0.05
WAIT_TIMEOUT = 300.0  # for all runs to park at their first gate
RESUME_TIMEOUT = 120.0  # for one resumed run to reach its next gate
DEFAULT_POLL = 1  # StackConfig.runner_poll_seconds
PREFECT_DEFAULT_POLL = 10  # PREFECT_RUNNER_POLL_FREQUENCY when unset

# bench/ and harness/ are no installed packages: they are imported from the checkout,
# so their imports follow this.
# ruff: noqa: E402
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.results import CODE_CHANGE_SPELLED, RunClock, RunRecord, stats_of, table, write_results
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
    scenario: str  # "ours" or "bare"
    poll: int
    run_id: str
    latency: float  # ours: POST -> next email at SMTP; bare: resume -> PAUSED (polled)
    to_paused: float  # POST or resume -> PAUSED at the next gate (polled)
    segments: dict[str, float] = field(default_factory=dict)
    warmup: bool = False  # resumed first, after the stack started: not in the figures


# --------------------------------------------------------------------------- one scenario


def start_bare_runner(stack: Stack, limit: int) -> subprocess.Popen[bytes]:
    """The baseline's ``serve`` process: the stack's environment and working directory."""
    stack.logs.mkdir(parents=True, exist_ok=True)
    with (stack.logs / "bare-runner.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, BARE_FLOW, str(limit)],
            cwd=PROJECT_ROOT,
            env=stack.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_bare_deployment(stack: Stack, runner: subprocess.Popen[bytes]) -> None:
    import httpx

    url = f"{stack.config.prefect_api_url}/deployments/name/{BARE_DEPLOYMENT}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if runner.poll() is not None:
            raise BenchError(f"the bare runner exited:\n{stack.log_tail('bare-runner')}")
        if httpx.get(url, timeout=5).status_code == 200:
            return
        time.sleep(0.5)
    raise BenchError(f"{BARE_DEPLOYMENT} was not registered:\n{stack.log_tail('bare-runner')}")


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


def run_scenario(poll: int, deals: int, warmup: int, out: Path, keep_data: bool) -> None:
    """One fresh stack with the runner polling every ``poll`` s; raw samples to ``out``."""
    signal.signal(signal.SIGTERM, raise_interrupt)
    from aiosmtpd.controller import Controller

    from dealflow.stack.config import StackConfig, stack_env
    from dealflow.stack.local import Stack

    data_dir = Path(tempfile.mkdtemp(prefix="dealflow-bench-"))
    config = StackConfig(
        data_dir=data_dir,
        prefect_port=free_port(),
        web_port=free_port(),
        smtp_port=free_port(),
        mail_catcher=False,
        runner_poll_seconds=poll,
        # Every approval of the benchmark is clicked from this one address.
        extra_env={"DEALFLOW_LINK_REQUESTS_PER_MINUTE": "1000000"},
    )
    # Before Prefect or Dealflow's settings are first read in this process.
    os.environ.pop("DEALFLOW_DATABASE_URL", None)
    os.environ.update(stack_env(config))

    inbox = TimedInbox()
    controller = Controller(inbox, hostname=config.host, port=config.smtp_port)
    controller.start()
    stack = Stack(config)
    bare_runner: subprocess.Popen[bytes] | None = None
    try:
        began = time.monotonic()
        stack.start()
        bare_runner = start_bare_runner(stack, config.runner_limit)
        wait_bare_deployment(stack, bare_runner)
        say(f"[poll {poll}s] stack up in {time.monotonic() - began:.0f}s")
        parked = park(poll, warmup + deals, inbox)
        server_log = stack.logs / "prefect.log"
        mark = server_log.stat().st_size
        samples = measure(poll, deals, warmup, inbox, parked)
        with server_log.open("rb") as log:
            parking, measuring = log.read(mark), log.read()
        locked = {
            "parking": parking.count(LOCKED),
            "measuring": measuring.count(LOCKED),
        }
        out.write_text(json.dumps({"samples": [asdict(s) for s in samples], "locked": locked}))
    except Exception:
        for name in [*stack.processes, "bare-runner"]:
            print(f"--- {name} log (tail) ---\n{stack.log_tail(name)}", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        if bare_runner is not None:
            stop_process(bare_runner)
        stack.stop()
        controller.stop()
        if keep_data:
            print(f"data kept in {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


Parked = list[tuple[tuple[str, str], str]]  # ((deal id, its run id), a bare run id)


def park(poll: int, count: int, inbox: TimedInbox) -> Parked:
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
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(BARE_DEPLOYMENT)
        bare = [str(client.create_flow_run_from_deployment(deployment.id).id) for _ in range(count)]
    for deal_id, run_id in ours:
        inbox.wait_for(to(MANAGER, "Approval needed", deal_id), WAIT_TIMEOUT)
        wait_for_state(run_id, "PAUSED", timeout=WAIT_TIMEOUT, key="gate-manager")
    for run_id in bare:
        wait_for_state(run_id, "PAUSED", timeout=WAIT_TIMEOUT, key="gate-a")
    for run_id in [r for _, r in ours] + bare:
        wait_until_no_process(run_id, timeout=60)
    say(
        f"[poll {poll}s] {count} deals at gate-manager and {count} bare runs at gate-a "
        f"in {time.monotonic() - began:.0f}s; resuming one at a time"
    )
    return list(zip(ours, bare, strict=True))


def measure(poll: int, deals: int, warmup: int, inbox: TimedInbox, parked: Parked) -> list[Sample]:
    """Resume the parked deals and baseline runs one at a time, alternating: each only
    once no process of the one before is left."""
    from prefect.client.orchestration import get_client

    samples: list[Sample] = []
    with get_client(sync_client=True) as client:
        for index, ((deal_id, run_id), bare_id) in enumerate(parked):
            mine = resume_ours(client, inbox, poll, deal_id, run_id)
            wait_until_no_process(run_id, timeout=60)
            baseline = resume_bare(client, poll, bare_id)
            wait_until_no_process(bare_id, timeout=60)
            mine.warmup = baseline.warmup = index < warmup
            samples += [mine, baseline]
            label = "warm-up" if mine.warmup else f"{index + 1 - warmup:>3}/{deals}"
            say(
                f"[poll {poll}s] {label}  ours {mine.latency:6.2f}s "
                f"(PAUSED {mine.to_paused:6.2f}s)  bare {baseline.latency:6.2f}s"
            )
    return samples


def resume_ours(
    client: SyncPrefectClient, inbox: TimedInbox, poll: int, deal_id: str, run_id: str
) -> Sample:
    """The manager approves by the emailed link; until the director's request arrives."""
    link = link_in(inbox.wait_for(to(MANAGER, "Approval needed", deal_id), WAIT_TIMEOUT).message)
    start, start_wall = time.monotonic(), time.time()
    response = decide(link, "approve", "bench")
    answered = time.monotonic() - start
    if response.status_code != 200 or "You approved this deal" not in response.text:
        raise BenchError(f"the approval of {deal_id} was answered {response.status_code}")
    request = wait_for_email(client, inbox, to(DIRECTOR, "Approval needed", deal_id), run_id)
    paused = wait_paused(client, run_id, "gate-director")
    return Sample(
        "ours",
        poll,
        run_id,
        latency=request.monotonic - start,
        to_paused=paused - start,
        segments={
            "call returned": answered,
            **segments_since(client, run_id, start_wall, request.wall),
        },
    )


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
                "see the runner's log (was the code changed during the run?)"
            )
        try:
            return inbox.wait_for(predicate, timeout=2)
        except BenchError:
            pass


def resume_bare(client: SyncPrefectClient, poll: int, run_id: str) -> Sample:
    """The baseline resumed the way web/decisions.py resumes a deal; until it pauses again."""
    from prefect.flow_runs import resume_flow_run

    start, start_wall = time.monotonic(), time.time()
    resume_flow_run(uuid.UUID(run_id), run_input={"approved": True})
    answered = time.monotonic() - start
    paused = wait_paused(client, run_id, "gate-b")
    return Sample(
        "bare",
        poll,
        run_id,
        latency=paused - start,
        to_paused=paused - start,
        segments={"call returned": answered, **segments_since(client, run_id, start_wall, None)},
    )


# --------------------------------------------------------------------------- report


def results_tables(samples: Sequence[Sample], polls: Sequence[int]) -> tuple[str, str]:
    def pick(scenario: str, poll: int) -> list[Sample]:
        return [s for s in samples if s.scenario == scenario and s.poll == poll and not s.warmup]

    def poll_label(poll: int) -> str:
        return f"{poll} s" + (" (Prefect default)" if poll == PREFECT_DEFAULT_POLL else "")

    rows: list[list[str]] = []
    breakdown: list[list[str]] = []
    for poll in polls:
        ours, bare = pick("ours", poll), pick("bare", poll)
        base = stats_of([s.latency for s in bare])
        lines = [
            ("ours: POST -> director's email at SMTP", [s.latency for s in ours]),
            ("ours: POST -> run PAUSED at gate-director", [s.to_paused for s in ours]),
            ("bare baseline: resume -> run PAUSED at gate-b", [s.latency for s in bare]),
        ]
        for name, values in lines:
            st = stats_of(values)
            rows.append(
                [
                    name,
                    poll_label(poll),
                    str(st.n),
                    *(f"{v:.2f}" for v in (st.median, st.p95, st.low, st.high)),
                    f"{st.median / base.median:.2f}",
                ]
            )
        for name, group in (("ours", ours), ("bare baseline", bare)):
            cells = []
            for segment in SEGMENTS:
                values = [s.segments[segment] for s in group if segment in s.segments]
                cells.append(f"{statistics.median(values):.2f}" if values else "-")
            breakdown.append([name, poll_label(poll), *cells])
    main_table = table(
        [
            "scenario",
            "runner poll",
            "n",
            "median s",
            "p95 s",
            "min s",
            "max s",
            "ratio ours/baseline (medians)",
        ],
        rows,
    )
    segment_table = table(["scenario", "runner poll", *SEGMENTS], breakdown)
    return main_table, segment_table


def render_section(
    samples: Sequence[Sample],
    polls: Sequence[int],
    record: RunRecord,
    locked: dict[int, dict[str, int]],
) -> str:
    main_table, segment_table = results_tables(samples, polls)
    opening = record.header(SCRIPT, make_target="bench", code_change=CODE_CHANGE_SPELLED)
    notes = "\n".join(f"- {note}" for note in report_notes(samples, polls, locked))
    return f"""{SECTION_TITLE}

Time from the manager's approval (the HTTP POST of the form at the emailed link) to the
director's approval request arriving at the SMTP server, against a bare Prefect flow
that only suspends twice (bench/bare_flow.py, its own `serve` runner on the same Prefect
server and settings), resumed with `resume_flow_run` and polled every 50 ms until it is
PAUSED at its second gate. One deal or run resumed at a time, ours and the baseline
alternating; each setting of the runners' poll (`PREFECT_RUNNER_POLL_FREQUENCY`) on a
fresh stack (`dealflow.stack.local.Stack`, Prefect and Dealflow on SQLite).

{opening}

{main_table}

Where the time goes: medians in seconds. "call returned" is when the POST was answered
(ours: the web service checked the link and the deal, stored the decision and resumed
the run) or `resume_flow_run` returned (baseline); the other columns come from the
timestamps of each run's Prefect states after that call began. The runner picks a
resumed run up at its next poll (Scheduled -> Pending), starts a process for it that
imports the flow (Pending -> Running), and the run executes the flow from the top again.

{segment_table}

{notes}
"""


def report_notes(
    samples: Sequence[Sample], polls: Sequence[int], locked: dict[int, dict[str, int]]
) -> list[str]:
    counted = [s for s in samples if not s.warmup]
    sizes = sorted(
        {len([s for s in counted if s.poll == p and s.scenario == "ours"]) for p in polls}
    )
    ranks = ", ".join(f"with {n} samples {_nearest_rank(n)}" for n in sizes)
    notes = [
        f"p95 is the nearest-rank percentile ({ranks}). The ratio divides each row's median "
        "by the baseline's median at the same poll setting."
    ]
    warmups = [f"{s.scenario} {s.latency:.2f} s at poll {s.poll} s" for s in samples if s.warmup]
    if warmups:
        notes.append(
            "Not in the figures: the first deal and baseline run resumed after each stack "
            f"started (warm-up): {', '.join(warmups)}."
        )
    if len(sizes) > 1:
        notes.append(
            f"Fewer samples at poll {PREFECT_DEFAULT_POLL} s (`--compare-deals`): there every "
            "resume waits for the runner's next poll, about 5 s on average, once for ours and "
            "once for the baseline; as many samples as at 1 s would take the run well past "
            "10 minutes."
        )
    if PREFECT_DEFAULT_POLL in polls:
        notes.append(
            f"At poll {PREFECT_DEFAULT_POLL} s most of each figure is where in the runner's "
            "poll cycle the resume happened to land (0 to a little over the interval), so "
            "with this few samples the ratio there is noise; the Pending -> Running and later "
            "columns are the part that compares."
        )
    for poll in polls:
        errors = locked.get(poll, {})
        slow = [s for s in counted if s.poll == poll and s.segments["call returned"] > 1.0]
        if errors.get("measuring") or errors.get("parking") or slow:
            by = ", ".join(
                f"{len([s for s in slow if s.scenario == name])} of "
                f"{len([s for s in counted if s.poll == poll and s.scenario == name])} {label}"
                for name, label in (("ours", "POSTs"), ("bare", "baseline resume calls"))
            )
            notes.append(
                f"Poll {poll} s: Prefect's server (SQLite) logged {errors.get('measuring', 0)} "
                "failed state change(s) `database is locked` while samples were taken "
                f"({errors.get('parking', 0)} while the runs were started and parked). Its API "
                "answers those with 503, and the client tries again after 2 s or more; calls "
                f"that took over 1 s: {by}."
            )
    return notes


def _nearest_rank(n: int) -> str:
    from_top = n - max(1, math.ceil(0.95 * n)) + 1
    if from_top == 1:
        return "the largest"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(from_top if from_top < 20 else from_top % 10, "th")
    return f"the {from_top}{suffix} largest"


# --------------------------------------------------------------------------- main


def run_child(poll: int, deals: int, warmup: int, out: Path, keep_data: bool) -> None:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--deals",
        str(deals),
        "--warmup",
        str(warmup),
        "--scenario-poll",
        str(poll),
        "--scenario-out",
        str(out),
    ]
    if keep_data:
        command.append("--keep-data")
    child = subprocess.Popen(command, cwd=PROJECT_ROOT)
    try:
        code = child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)  # it stops its stack, then exits
        child.wait(timeout=120)
        raise
    if code != 0:
        raise BenchError(f"the scenario with poll {poll}s failed (exit code {code})")


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--deals", type=int, default=20, help="Deals (and as many baseline runs) measured."
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="Deals (and baseline runs) resumed first and left out of the figures.",
    )
    parser.add_argument(
        "--compare-poll",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"Also run with the runners polling every {PREFECT_DEFAULT_POLL}s (Prefect's default).",
    )
    parser.add_argument(
        "--compare-deals",
        type=int,
        default=10,
        help=f"Deals (and baseline runs) measured at poll {PREFECT_DEFAULT_POLL}s.",
    )
    parser.add_argument(
        "--no-results", action="store_true", help="Print the tables only; leave RESULTS.md alone."
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="Keep the stacks' temporary data folders."
    )
    parser.add_argument("--raw", type=Path, help="Also write every sample to this JSON file.")
    parser.add_argument("--scenario-poll", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scenario-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.deals < 1 or args.compare_deals < 1 or args.warmup < 0:
        parser.error("--deals and --compare-deals must be at least 1, --warmup at least 0")

    if args.scenario_poll is not None:  # the child: one poll setting on its own stack
        run_scenario(args.scenario_poll, args.deals, args.warmup, args.scenario_out, args.keep_data)
        return

    signal.signal(signal.SIGTERM, raise_interrupt)
    clock = RunClock(argv)
    counts = {DEFAULT_POLL: args.deals}
    if args.compare_poll:
        counts[PREFECT_DEFAULT_POLL] = args.compare_deals
    polls = list(counts)
    samples: list[Sample] = []
    locked: dict[int, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="dealflow-bench-") as scratch:
        for poll, deals in counts.items():
            out = Path(scratch) / f"poll-{poll}.json"
            run_child(poll, deals, args.warmup, out, args.keep_data)
            result = json.loads(out.read_text())
            samples += [Sample(**raw) for raw in result["samples"]]
            locked[poll] = result["locked"]
    record = clock.stop()
    if args.raw:
        args.raw.write_text(json.dumps([asdict(s) for s in samples], indent=1))
    if record.code[0] != record.code[1]:
        print(
            f"warning: the checkout changed during the run: {record.code[0]} -> {record.code[1]}",
            file=sys.stderr,
        )
    section = render_section(samples, polls, record, locked)
    say("\n" + section)
    if not args.no_results:
        write_results(section, SECTION_TITLE)


if __name__ == "__main__":
    run_main(main)
