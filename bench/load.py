"""Load: N deals submitted and approved over HTTP on the production path, against bare Prefect.

The production path of docs/deployment.md (``dealflow.stack.local.Stack`` with two ``dealflow
worker`` processes, starting runs warm unless ``--cold``, on a process work pool capped at
``--pool-limit`` runs, the web service
as two uvicorn processes, Prefect and Dealflow on PostgreSQL) carries N deals at once:

* ours: a load script (this one) submits every deal with ``POST /api/deals``; an SMTP
  server in this process takes each approval request as it arrives, and a pool of
  ``--concurrency`` HTTP clients posts the approval form at its link (what the page's
  Approve button sends), then the sales rep's signed-contract form at the link of the
  email after the last approval. A deal is done when the email that follows its signing
  arrives (the delivery kickoff, or the acceptance request).
* baseline: a bare Prefect flow with as many suspends and no work (``bare_suspends``,
  like bench/bare_flow.py; the workers load it from this file), deployed to the same work
  pool and run by the same two workers; N runs created, each resumed with
  ``resume_flow_run`` as soon as it is PAUSED, by the same number of clients.

Measured: wall time from the first submission (creation) to the last deal (run) done,
deals per minute, latency from each approval POST to the next email (baseline: from each
resume call to the run's PAUSED state at its next gate, by the state's timestamp), and
peak memory (RSS, from /proc every 0.5 s) of the Prefect server, of the workers with the
flow-run processes they start, and of the web service.

    .venv/bin/python bench/load.py [--deals 1000] [--concurrency 10] [--pool-limit 10]
                                   [--example FILE] [--skip-baseline] [--cold]
                                   [--out FILE.json]

Prints the tables and writes them to bench/RESULTS.md (only this benchmark's section).
Prefect reads its settings once, when first imported: this script and the bench modules
it uses import Prefect only inside functions, after ``plan_stack`` has put the stack's
environment in place.

This file holds the command line and the order of the phases; the pieces are beside it:
bench/production_stack.py (the stack and its databases), bench/process_trees.py (memory
sampling), bench/deals_under_load.py and bench/bare_under_load.py (the two drivers, on
bench/under_load.py and bench/client_pool.py) and bench/load_report.py (the section).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Run as a script (and loaded by the workers as the baseline flow's entrypoint), this
# file imports its neighbours in bench/ from the checkout, after this.
# ruff: noqa: E402
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.bare_under_load import (
    BASELINE_DEPLOYMENT,
    BASELINE_NAME,
    BareUnderLoad,
    baseline_flow,
    register_baseline,
)
from bench.deal_copies import (
    DEFAULT_EXAMPLE,
    SMALL_SEATS,
    deal_deployment_name,
    fresh_copies,
    load_example,
    route_of,
)
from bench.deals_under_load import DealsUnderLoad
from bench.load_report import RunInfo, render_section, section_title
from bench.process_trees import (
    MemorySampler,
    cpu_between,
    cpu_by_role,
    memory_peaks,
    wait_workers_idle,
)
from bench.production_stack import (
    BenchPlan,
    other_runs_between,
    plan_stack,
    running_stack,
    stack_roles,
)
from bench.results import RunClock, write_results
from bench.script import BenchError, raise_interrupt, run_main, say
from bench.timed_inbox import ListeningInbox
from bench.under_load import PhaseResult

if TYPE_CHECKING:
    from dealflow.stack.local import Stack


def __getattr__(name: str) -> Any:
    """``bare_suspends``, the baseline deployment's entrypoint, is built when first asked
    for (by Prefect's loader in a flow-run process), so that importing this module does
    not import Prefect before the stack's environment is set."""
    if name == "bare_suspends":
        return baseline_flow()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def run_baseline(
    count: int, suspends: int, deployment_id: uuid.UUID, args: argparse.Namespace
) -> tuple[BareUnderLoad, tuple[float, float]]:
    load = BareUnderLoad(deployment_id, count, suspends)
    say(f"baseline: creating {count} runs of {BASELINE_DEPLOYMENT} ...")
    window = load.run(args.concurrency, phase_timeout(args), args.stall_timeout)
    say(f"baseline: {load.finished()} runs done in {window[1] - window[0]:.1f}s")
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
    suspends = len(route_of(deals[0], "the deal").gates) + 2  # and signing, acceptance
    roles = stack_roles(stack)
    sampler = MemorySampler(roles).start()
    bare: BareUnderLoad | None = None
    try:
        began, cpu_before = time.time(), cpu_by_role(roles)
        ours, window = run_ours(stack, inbox, plan, deals, args)
        other = other_runs_between(began, time.time(), [deal_deployment_name()])
        wait_workers_idle(roles)  # ours' last runs suspended and gone
        phases = [ours.result(window, memory_peaks(sampler.between(*window)), other)]
        phases[0].cpu = cpu_between(cpu_before, cpu_by_role(roles))
        if deployment_id is not None:
            began, cpu_before = time.time(), cpu_by_role(roles)
            bare, window = run_baseline(len(deals), suspends, deployment_id, args)
            other = other_runs_between(began, time.time(), [deal_deployment_name(), BASELINE_NAME])
            wait_workers_idle(roles)
            phases.append(bare.result(window, memory_peaks(sampler.between(*window)), other))
            phases[1].cpu = cpu_between(cpu_before, cpu_by_role(roles))
    finally:
        sampler.stop()
    return phases, raw_results(ours, bare, sampler)


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
    parser.add_argument(
        "--cold",
        action="store_true",
        help="Workers start every run cold (`dealflow worker --cold`), as Prefect's own worker does.",
    )
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

    plan = plan_stack("bench_load", args.pool_limit, warm=not args.cold)
    signal.signal(signal.SIGTERM, raise_interrupt)
    clock = RunClock(argv)
    template, example = load_example(args.example)
    route = route_of(template, example)
    say(f"deal: {example}; route {route.rule}: {', '.join(route.gates)} (+ signing, acceptance)")
    inbox = ListeningInbox()
    with running_stack(plan, inbox, args.keep_data) as stack:
        phases, raw = run_phases(stack, inbox, plan, fresh_copies(template, args.deals), args)
    if out:
        out.write_text(json.dumps(raw, indent=1))
        say(f"raw samples written to {out}")
    info = RunInfo(clock.stop(), example, route, args.concurrency, args.pool_limit, not args.cold)
    section = render_section(info, phases)
    say("\n" + section)
    if not args.no_results:
        write_results(section, section_title(args.deals, not args.cold))
    if any(p.failures for p in phases):
        raise BenchError("some deals or runs failed: see the notes above")


if __name__ == "__main__":
    run_main(main)
