"""In flight: many suspended deals held by one Prefect server, and what waiting costs.

A suspended deal holds no process: its run ends at each gate and a worker starts a new
one when the decision comes. So the memory of the workers must not grow with the number
of deals waiting, and the server must keep answering. This measures it on the production
path (``dealflow.stack.local.Stack``: PostgreSQL, a process work pool with two workers, the web
service as two processes):

1. ``--sample`` deals are submitted with ``POST /api/deals`` and really taken to their
   first gate (an approval request at this script's SMTP server, the run suspended).
2. Then, step by step, the rest is seeded up to each number of ``--waiting`` deals:
   each is stored by Dealflow's intake function (``dealflow.intake.submit.store_deal``) and
   its deal-handoff run is created through Prefect's API directly in the state a real
   deal has at the gate (``Suspended``, pause key ``gate-<first gate>``; the server
   forces an initial state exactly as ``set_flow_run_state(..., force=True)`` does).
   Really executing them costs about 2.2 CPU-seconds per run, too much for 10,000.
3. At 0 seeded deals and at each step, with no flow run executing: RSS of the Prefect
   server, of each worker (and how many child processes it has: none while nothing
   runs) and of the web service, over ``--settle`` seconds, with the CPU they used
   meanwhile; the size of both databases; the time of the query a worker polls with
   (``POST /api/work_pools/dealflow/get_scheduled_flow_runs``), of reading one flow run
   and of counting the suspended ones; and the approval latency of ``--probes`` of the
   real deals (the POST at its emailed link -> the next email), so that we see the server
   still serves them.

    .venv/bin/python bench/in_flight.py [--waiting 1000,10000] [--sample 20] [--probes 3]

Prints the tables and writes them to bench/RESULTS.md (only this benchmark's section).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import signal
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# bench/ is no installed package: it is imported from the checkout, after this.
# ruff: noqa: E402
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.client_pool import LATER, ClientPool, Clients, retry_on_503
from bench.deal_copies import (
    RouteInfo,
    deal_deployment_id,
    deal_deployment_name,
    email_kind,
    fresh_copies,
    load_example,
    route_of,
)
from bench.process_trees import (
    SAMPLE_SECONDS,
    Roles,
    sample_memory,
    tree_cpu_seconds,
    wait_workers_idle,
)
from bench.production_stack import (
    BenchPlan,
    database_size,
    other_runs_between,
    plan_stack,
    running_stack,
    stack_roles,
)
from bench.results import MIB, RunClock, RunRecord, mib, table, write_results
from bench.script import BenchError, raise_interrupt, run_main, say
from bench.timed_inbox import TimedInbox
from harness.mail import LINK, link_in, to

if TYPE_CHECKING:
    import httpx

    from dealflow.stack.local import Stack

SECTION_TITLE = "## Deals in flight: suspended runs held by one server (bench/in_flight.py)"
SCRIPT = "bench/in_flight.py"
FIRST_GATE_TIMEOUT = 600.0  # for the sampled deals to reach their first gate
PROBE_TIMEOUT = 180.0  # one approval -> the next email
TIMED_CALLS = 5  # each timed API call is made this many times; median and max reported
SEED_THREADS = 4
IDLE_TIMEOUT = 600.0  # for the workers to finish what runs (a scheduled sweep, say)


# --------------------------------------------------------------------------- the real sample


@dataclass
class SampledDeal:
    deal_id: str
    flow_run_id: str
    link: str = ""  # the first gate's approval link, from its email
    probed: bool = False


def submit_sample(
    stack: Stack,
    plan: BenchPlan,
    inbox: TimedInbox,
    deals: Sequence[dict[str, Any]],
    route: RouteInfo,
) -> list[SampledDeal]:
    """Submit the deals over HTTP and wait until each waits at its first gate: its
    request emailed, its run suspended. Their links are kept for the probes."""
    import httpx

    from dealflow.infra.prefect_api import pause_state
    from models.keys import gate_wait

    sampled: list[SampledDeal] = []
    with httpx.Client(timeout=60) as http:
        for deal in deals:
            response = http.post(
                f"{stack.config.web_url}/api/deals", json=deal, headers={"X-API-Key": plan.api_key}
            )
            if response.status_code != 201:
                raise BenchError(f"submission answered {response.status_code}: {response.text}")
            sampled.append(SampledDeal(deal["deal_id"], response.json()["flow_run_id"]))
    deadline = time.monotonic() + FIRST_GATE_TIMEOUT
    key = gate_wait(route.gates[0])
    for waiting in sampled:
        remaining = max(1.0, deadline - time.monotonic())
        request = inbox.wait_for(
            to(route.approvers[0], "Approval needed", waiting.deal_id), remaining
        )
        waiting.link = link_in(request.message)
        while pause_state(waiting.flow_run_id) != ("PAUSED", key):
            if time.monotonic() > deadline:
                raise BenchError(f"run {waiting.flow_run_id} did not suspend at {key}")
            time.sleep(0.3)
    return sampled


@dataclass(frozen=True)
class Probe:
    deal_id: str
    latency: float  # POST start -> the deal's next email at our SMTP server
    post_seconds: float
    status: int
    next_email: str


def probe_approval(http: httpx.Client, inbox: TimedInbox, deal: SampledDeal) -> Probe:
    """Approve one real deal at its emailed link; until the email that follows arrives."""
    start = time.monotonic()
    response = retry_on_503(
        lambda: http.post(deal.link, data={"decision": "approve", "comment": "in-flight probe"})
    )
    answered = time.monotonic() - start
    deal.probed = True
    if response.status_code != 200:
        raise BenchError(f"the approval of {deal.deal_id} was answered {response.status_code}")
    following = inbox.wait_for(next_email_of(deal), PROBE_TIMEOUT)
    kind = email_kind(str(following.message["Subject"])) or "?"
    return Probe(deal.deal_id, following.monotonic - start, answered, response.status_code, kind)


def next_email_of(deal: SampledDeal) -> Callable[[EmailMessage], bool]:
    """The deal's email after its first approval: the next gate's request (another
    link), the sales rep's signing request, the delivery kickoff or the acceptance request."""

    def predicate(message: EmailMessage) -> bool:
        subject = str(message["Subject"])
        kind = email_kind(subject)
        if kind is None or f"({deal.deal_id})" not in subject:
            return False
        if kind != "approval request":
            return True
        body = message.get_body(("plain",))
        links = LINK.findall(str(body.get_content())) if body is not None else []
        return deal.link not in links

    return predicate


# --------------------------------------------------------------------------- seeding


@dataclass
class Seeder:
    """Stores deals through Dealflow's intake and creates their runs already suspended."""

    template: dict[str, Any]
    source: str
    gate_key: str
    deployment_id: uuid.UUID
    seeded: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def _seed_one(self, clients: Clients, deal: dict[str, Any]) -> None:
        from prefect.states import Suspended
        from sqlalchemy import update

        from dealflow.infra.db import session_scope
        from dealflow.intake.submit import parse_deal, store_deal
        from models.tables import Deal

        intake = parse_deal(deal, self.source)
        store_deal(intake, submitted_via="bench/in_flight.py seed")
        run = clients.prefect.create_flow_run_from_deployment(
            self.deployment_id,
            parameters={"deal_id": intake.deal_id},
            name=f"deal-{intake.deal_id}",
            tags=["dealflow", f"team:{intake.team}", "bench-seeded"],
            idempotency_key=f"deal-handoff/{intake.deal_id}",
            state=Suspended(pause_key=self.gate_key),
        )
        with session_scope() as session:
            session.execute(
                update(Deal).where(Deal.id == intake.deal_id).values(flow_run_id=str(run.id))
            )
        with self.changed:
            self.seeded += 1
            self.changed.notify_all()

    def seed(self, count: int, timeout: float) -> None:
        """Seed ``count`` more deals with a few client threads; bounded by ``timeout``."""

        def failed(exc: BaseException) -> None:
            with self.changed:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self.changed.notify_all()

        target = self.seeded + count
        began = time.monotonic()
        with ClientPool(SEED_THREADS, failed).running() as pool:
            for deal in fresh_copies(self.template, count):
                pool.submit(LATER, functools.partial(self._seed_one, deal=deal))
            shown = began
            with self.changed:
                while self.seeded < target and not self.errors:
                    now = time.monotonic()
                    if now - began > timeout:
                        raise BenchError(f"seeded {self.seeded} of {target} in {timeout:.0f}s")
                    if now - shown >= 15:
                        say(f"  seeded {self.seeded}/{target} ({now - began:.0f}s)")
                        shown = now
                    self.changed.wait(1.0)
                if self.errors:  # the queued deals are dropped
                    raise BenchError(f"seeding failed: {self.errors[:3]}")
        self.seconds += time.monotonic() - began


# --------------------------------------------------------------------------- measures


@dataclass(frozen=True)
class Timed:
    median_ms: float
    max_ms: float


def timed(call: Callable[[], httpx.Response], times: int = TIMED_CALLS) -> Timed:
    """Make ``call`` ``times`` times (each must answer 200); its median and max, in ms."""
    seconds = []
    for _ in range(times):
        start = time.perf_counter()
        response = call()
        seconds.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise BenchError(f"{response.request.url} answered {response.status_code}")
    return Timed(statistics.median(seconds) * 1000, max(seconds) * 1000)


@dataclass
class StepResult:
    """Everything measured with ``seeded`` deals seeded (and the real sample) waiting."""

    seeded: int
    suspended: int  # runs the server counts as PAUSED
    seed_seconds: float  # to seed this step's deals
    server_rss: int  # max over the settle window, bytes
    web_rss: int
    worker_rss: list[int]  # each worker process, max over the window
    worker_children: int  # the most child processes any worker had in the window
    server_rss_after: int  # the same, measured again after this step's approvals
    worker_rss_after: list[int]
    cpu: dict[str, float]  # role -> % of one core over the window
    prefect_db: int  # bytes
    dealflow_db: int
    poll_query: Timed
    read_run: Timed
    count_suspended: Timed
    probes: list[Probe]


def settle_and_sample(roles: Roles, seconds: float) -> dict[str, Any]:
    """Memory of the idle stack over ``seconds`` (max of samples every 0.5 s) and the CPU
    each role used meanwhile."""
    cpu_before = {role: tree_cpu_seconds(pids) for role, pids in roles.items()}
    began = time.monotonic()
    samples = []
    while True:
        samples.append(sample_memory(roles))
        if time.monotonic() - began >= seconds:
            break
        time.sleep(SAMPLE_SECONDS)
    elapsed = time.monotonic() - began
    cpu = {
        role: (tree_cpu_seconds(pids) - cpu_before[role]) / elapsed * 100
        for role, pids in roles.items()
    }
    return {
        "server": max(s.server for s in samples),
        "web": max(s.web for s in samples),
        "workers": [max(s.workers_own[i] for s in samples) for i in range(len(roles["workers"]))],
        "children": max(len(s.flow) for s in samples),
        "cpu": cpu,
    }


def measure_step(
    stack: Stack,
    plan: BenchPlan,
    inbox: TimedInbox,
    seeder: Seeder,
    sampled: list[SampledDeal],
    probes: int,
    settle: float,
    seed_seconds: float,
) -> StepResult:
    """The figures of one step: the idle stack's memory, the timed calls, the approvals
    of ``probes`` real deals, and the idle stack's memory again after them (the workers
    ran those approvals' flow runs meanwhile)."""
    import httpx

    roles = stack_roles(stack)
    wait_workers_idle(roles, IDLE_TIMEOUT)
    idle = settle_and_sample(roles, settle)
    api = stack.config.prefect_api_url
    paused = {"flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}}}
    real_run = sampled[0].flow_run_id
    with httpx.Client(timeout=60) as http:

        def poll() -> httpx.Response:
            soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)
            return http.post(
                f"{api}/work_pools/dealflow/get_scheduled_flow_runs",
                json={"scheduled_before": soon.isoformat()},
            )

        poll_query = timed(poll)
        read_run = timed(lambda: http.get(f"{api}/flow_runs/{real_run}"))
        count_suspended = timed(lambda: http.post(f"{api}/flow_runs/count", json=paused))
        suspended = int(http.post(f"{api}/flow_runs/count", json=paused).json())
        results = []
        for deal in [d for d in sampled if not d.probed][:probes]:
            results.append(probe_approval(http, inbox, deal))
            wait_workers_idle(roles, IDLE_TIMEOUT)
    after = settle_and_sample(roles, settle)
    return StepResult(
        seeded=seeder.seeded,
        suspended=suspended,
        seed_seconds=seed_seconds,
        server_rss=idle["server"],
        web_rss=idle["web"],
        worker_rss=idle["workers"],
        worker_children=max(idle["children"], after["children"]),
        server_rss_after=after["server"],
        worker_rss_after=after["workers"],
        cpu=idle["cpu"],
        prefect_db=database_size(plan.databases["prefect"]),
        dealflow_db=database_size(plan.databases["dealflow"]),
        poll_query=poll_query,
        read_run=read_run,
        count_suspended=count_suspended,
        probes=results,
    )


# --------------------------------------------------------------------------- report


def summary_table(steps: Sequence[StepResult]) -> str:
    """One row per step. The workers' change is against the previous step's measure after
    its approvals: between the two, only the seeding happened."""
    rows = []
    previous: StepResult | None = None
    for step in steps:
        workers = " + ".join(mib(r) for r in step.worker_rss)
        if previous is not None:
            change = (sum(step.worker_rss) - sum(previous.worker_rss_after)) / MIB
            workers += f" ({change:+.1f})"
        latencies = [p.latency for p in step.probes]
        rows.append(
            [
                f"{step.seeded:,}",
                f"{step.suspended:,}",
                f"{mib(step.server_rss)} / {mib(step.server_rss_after)}",
                workers,
                " + ".join(mib(r) for r in step.worker_rss_after),
                str(step.worker_children),
                mib(step.web_rss),
                f"{step.prefect_db / MIB:.0f}",
                f"{step.poll_query.median_ms:.0f}",
                f"{step.read_run.median_ms:.0f}",
                f"{statistics.median(latencies):.2f}" if latencies else "-",
            ]
        )
        previous = step
    return table(
        [
            "seeded",
            "suspended runs",
            "server RSS MiB (before / after approvals)",
            "workers RSS MiB (change since the previous step's approvals)",
            "workers RSS MiB after approvals",
            "worker children",
            "web RSS MiB",
            "Prefect DB MiB",
            "poll query ms",
            "read run ms",
            "approval latency s (median)",
        ],
        rows,
    )


def step_table(step: StepResult) -> str:
    probes = ", ".join(
        f"{p.latency:.2f} s (POST {p.post_seconds:.2f} s, then the {p.next_email})"
        for p in step.probes
    )
    rows = [
        ["deals seeded (through the API, state set directly)", f"{step.seeded:,}"],
        ["runs the server counts as PAUSED (seeded + real)", f"{step.suspended:,}"],
        ["seconds to seed this step's deals", f"{step.seed_seconds:.0f}"],
        ["Prefect server RSS, MiB (all its processes)", mib(step.server_rss)],
        *[
            [f"worker {n} RSS, MiB (the worker process)", mib(rss)]
            for n, rss in enumerate(step.worker_rss, start=1)
        ],
        ["Prefect server RSS after the approvals, MiB", mib(step.server_rss_after)],
        *[
            [f"worker {n} RSS after the approvals, MiB", mib(rss)]
            for n, rss in enumerate(step.worker_rss_after, start=1)
        ],
        ["child processes of the workers (most at once)", str(step.worker_children)],
        ["web service RSS, MiB (all its processes)", mib(step.web_rss)],
        *[
            [f"CPU while idle, {role} (% of one core)", f"{pct:.1f}"]
            for role, pct in sorted(step.cpu.items())
        ],
        ["Prefect database, MiB (pg_database_size)", f"{step.prefect_db / MIB:.1f}"],
        ["Dealflow database, MiB", f"{step.dealflow_db / MIB:.1f}"],
        [
            "worker poll query (get_scheduled_flow_runs), ms median / max",
            f"{step.poll_query.median_ms:.1f} / {step.poll_query.max_ms:.1f}",
        ],
        [
            "read one flow run, ms median / max",
            f"{step.read_run.median_ms:.1f} / {step.read_run.max_ms:.1f}",
        ],
        [
            "count the PAUSED runs, ms median / max",
            f"{step.count_suspended.median_ms:.1f} / {step.count_suspended.max_ms:.1f}",
        ],
        ["approval latency of real deals (POST -> next email)", probes or "-"],
    ]
    return f"With {step.seeded:,} seeded deals waiting:\n\n" + table(["measure", "value"], rows)


@dataclass(frozen=True)
class RunInfo:
    record: RunRecord
    example: str
    route: RouteInfo
    sample: int
    settle: float
    other_runs: dict[str, int]


def render_section(info: RunInfo, steps: Sequence[StepResult]) -> str:
    details = "\n\n".join(step_table(step) for step in steps)
    gate = info.route.gates[0]
    notes = [
        f"**How the waiting deals were made.** {info.sample} deals are real: submitted with "
        "`POST /api/deals`, run by the workers to their first gate, their approval requests "
        "received by this script's SMTP server. The seeded deals are not: each is stored by "
        "Dealflow's intake (`store_deal`), and its deal-handoff run is created through "
        f"Prefect's API directly in the state a real deal has at the gate (`Suspended`, key "
        f"`gate-{gate}`; the server forces an initial state as `set_flow_run_state(force=True)` "
        "does). No process ever ran for them, they sent no email, and Prefect holds no "
        "input schema, task runs, logs or artifacts for them, so the Prefect database grows "
        "less than with real deals.",
        "Memory and CPU are measured with no flow run executing (the workers' child "
        f"processes waited for), over {info.settle:.0f} s: the largest RSS sampled every 0.5 s "
        "(each role's process tree), and the CPU time its live processes used meanwhile. "
        "Memory is measured again after each step's approvals (the workers ran their flow "
        "runs); between that and the next step's first measure only the seeding happened, "
        "so the change in the summary's workers column is the seeding's own effect.",
        "Timed calls go straight to Prefect's REST API, each made 5 times: the work pool "
        "query every worker makes each second (`scheduled_before` 10 s ahead, all queues), "
        "reading one real deal's run, and counting the PAUSED runs (what a dashboard asks). "
        "The approval latency is the POST of the approval form at a real deal's emailed "
        "link to the arrival of that deal's next email; each real deal is approved once, "
        "so later steps use other deals.",
    ]
    if info.other_runs:
        runs = ", ".join(f"{n} x {name}" for name, n in sorted(info.other_runs.items()))
        notes.append(f"Scheduled runs that ran on the workers during the benchmark: {runs}.")
    notes_text = "\n".join(f"- {note}" for note in notes)
    return f"""{SECTION_TITLE}

Deals waiting at their first gate, held by one Prefect server on the production path
(docs/deployment.md: Prefect and Dealflow on PostgreSQL, a process work pool with two
`prefect worker` processes polling every second, the web service as two uvicorn
processes). A waiting deal holds no process, so the workers' memory must not grow with
the number of waiting deals, and the server must keep answering.

{info.record.header(SCRIPT)}
- Deal: {info.example}; route `{info.route.rule}`: {", ".join(info.route.gates)}

{summary_table(steps)}

{details}

{notes_text}
"""


# --------------------------------------------------------------------------- main


def parse_waiting(text: str) -> list[int]:
    steps = sorted(
        {int(part.replace("_", "").replace(",", "")) for part in text.split(",") if part}
    )
    if not steps or steps[0] < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive numbers")
    return steps


def run_steps(
    stack: Stack,
    plan: BenchPlan,
    inbox: TimedInbox,
    template: dict[str, Any],
    example: str,
    route: RouteInfo,
    args: argparse.Namespace,
) -> tuple[list[StepResult], dict[str, int]]:
    """The real sample first, then each step: seed up to its number, measure. Also the
    scheduled runs that shared the workers meanwhile."""
    from models.keys import gate_wait

    began = time.time()
    say(f"taking {args.sample} real deals to gate-{route.gates[0]} ...")
    sampled = submit_sample(stack, plan, inbox, fresh_copies(template, args.sample), route)
    say(f"  {len(sampled)} real deals wait at gate-{route.gates[0]}")
    seeder = Seeder(template, example, gate_wait(route.gates[0]), deal_deployment_id())
    steps: list[StepResult] = []
    for target in [0, *args.waiting]:
        seed_began = time.monotonic()
        if target > seeder.seeded:
            say(f"seeding up to {target:,} waiting deals ...")
            seeder.seed(target - seeder.seeded, timeout=600 + target * 0.5)
        seconds = time.monotonic() - seed_began
        say(f"measuring with {seeder.seeded:,} seeded deals ...")
        step = measure_step(stack, plan, inbox, seeder, sampled, args.probes, args.settle, seconds)
        steps.append(step)
        say(
            f"  server {mib(step.server_rss)} MiB, workers "
            f"{' + '.join(mib(r) for r in step.worker_rss)} MiB "
            f"({step.worker_children} children), web {mib(step.web_rss)} MiB, "
            f"poll {step.poll_query.median_ms:.0f} ms, approvals "
            + ", ".join(f"{p.latency:.2f} s" for p in step.probes)
        )
    return steps, other_runs_between(began, time.time(), [deal_deployment_name()])


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--waiting",
        type=parse_waiting,
        default=[1000, 10000],
        help="Numbers of seeded deals to measure at, e.g. 1000,10000 (and always at 0).",
    )
    parser.add_argument("--sample", type=int, default=20, help="Real deals taken to their gate.")
    parser.add_argument(
        "--probes", type=int, default=3, help="Real deals approved at each step (latency)."
    )
    parser.add_argument(
        "--settle", type=float, default=10.0, help="Seconds of memory sampling per step."
    )
    parser.add_argument("--example", help="The deal to copy (default as bench/load.py's).")
    parser.add_argument(
        "--pool-limit", type=int, default=10, help="The work pool's concurrency limit."
    )
    parser.add_argument(
        "--no-results", action="store_true", help="Print the tables only; leave RESULTS.md alone."
    )
    parser.add_argument("--keep-data", action="store_true", help="Keep the stack's data folder.")
    args = parser.parse_args(argv)
    count = 1 + len(args.waiting)
    if args.probes < 1 or args.sample < args.probes * count:
        parser.error(f"--sample must hold --probes real deals for each of the {count} steps")

    plan = plan_stack("bench_inflight", args.pool_limit)
    signal.signal(signal.SIGTERM, raise_interrupt)
    clock = RunClock(argv)
    template, example = load_example(args.example)
    route = route_of(template, example)
    inbox = TimedInbox()
    with running_stack(plan, inbox, args.keep_data) as stack:
        steps, other = run_steps(stack, plan, inbox, template, example, route, args)
    info = RunInfo(
        record=clock.stop(),
        example=example,
        route=route,
        sample=args.sample,
        settle=args.settle,
        other_runs=other,
    )
    section = render_section(info, steps)
    say("\n" + section)
    if not args.no_results:
        write_results(section, SECTION_TITLE)


if __name__ == "__main__":
    run_main(main)
