"""The load benchmark's section of bench/RESULTS.md: its tables and the notes that read them.

Three tables from the phases' figures (ours and the baseline): throughput and latency
with the ratio of ours to the baseline, the latency split where the approval POST (the
resume call) returned, and peak memory by role. The notes say how each figure was taken,
and what the run met that bears on it (more flow-run processes than the pool's limit,
scheduled runs on the same workers, failures).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bench.bare_under_load import STATE_POLL_SECONDS
from bench.deal_copies import RouteInfo
from bench.results import RunRecord, mib, nearest_rank, stats_of, table
from bench.under_load import PhaseResult


def section_title(deals: int, warm: bool) -> str:
    """One section per size and path: a 1,000-deal run of ours alone leaves the
    100-deal comparison with the stock path in place."""
    path = "" if warm else ", runs started cold"
    return f"## Load: {deals} deals approved over HTTP on the production path{path} (bench/load.py)"


SCRIPT = "bench/load.py"


@dataclass(frozen=True)
class RunInfo:
    record: RunRecord
    example: str
    route: RouteInfo
    concurrency: int
    pool_limit: int
    warm: bool = True


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
            "workers + flow-run processes (RSS sum)",
            "the same, PSS (shared pages once)",
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
                mib(p.memory.workers_pss),
                mib(p.memory.workers_own),
                mib(p.memory.flow_process),
                str(p.memory.flow_processes),
                mib(p.memory.web),
            ]
            for p in phases
        ],
    )
    return main, memory


CPU_ROLES = [
    ("server", "Prefect server"),
    ("postgres", "PostgreSQL"),
    ("workers", "workers with their runs"),
    ("web", "web service"),
]


def cpu_table(phases: Sequence[PhaseResult]) -> str:
    """CPU seconds by role over each phase, and per deal (per baseline run)."""
    rows = []
    for phase in phases:
        total = sum(phase.cpu.values())
        per = phase.count or 1
        rows.append(
            [
                phase.name,
                *(f"{phase.cpu.get(role, 0.0):.0f}" for role, _title in CPU_ROLES),
                f"{total:.0f}",
                *(f"{phase.cpu.get(role, 0.0) / per:.2f}" for role, _title in CPU_ROLES),
                f"{total / per:.2f}",
            ]
        )
    if len(phases) == 2 and all(sum(p.cpu.values()) for p in phases):
        ours, base = phases
        rows.append(
            [
                "ratio ours/baseline",
                *[""] * (len(CPU_ROLES) + 1),
                *(
                    ratio(
                        ours.cpu.get(role, 0.0) / ours.count, base.cpu.get(role, 0.0) / base.count
                    )
                    for role, _title in CPU_ROLES
                ),
                ratio(sum(ours.cpu.values()) / ours.count, sum(base.cpu.values()) / base.count),
            ]
        )
    titles = [title for _role, title in CPU_ROLES]
    return table(
        ["scenario", *titles, "all", *(f"{t}, per deal" for t in titles), "all, per deal"],
        rows,
    )


def render_section(info: RunInfo, phases: Sequence[PhaseResult]) -> str:
    main_table, memory_table = figures_tables(phases)
    split_table = call_table(phases)
    ours = phases[0]
    gates = ", ".join(info.route.gates)
    notes = [
        "Latency: ours, from the start of an approval POST to the arrival at this "
        "script's SMTP server of the deal's next email (the next gate's request, the "
        "sales rep's signing request, or, after the signing POST, the delivery kickoff); baseline, from the start of a `resume_flow_run` call to the "
        "timestamp of the run's next PAUSED state (seen by a poll every "
        f"{STATE_POLL_SECONDS:.2f} s; the poll only triggers the next resume). "
        "p95 and p99 are nearest-rank.",
        "A POST is posted as soon as its request email arrives, before the run has "
        "suspended; the web service waits (up to 10 s) for the run to reach the gate, so the "
        "POST's own time includes the moment between the email and the suspend, which an "
        "approver never sees, while the baseline resumes a run only once it is PAUSED. The "
        "second table splits each latency at the moment the call returned.",
        "Memory: resident set sizes from /proc every 0.5 s, each role's process tree summed "
        "per sample; a flow-run process is a worker's child with its own children (with "
        "warm execution, the launcher: the run itself is forked from the warm parent and "
        "counted in the workers' trees). A sum of resident sizes counts the pages a fork "
        "shares with its warm parent once per fork; the PSS column (proportional set size, "
        "/proc/<pid>/smaps_rollup) counts them once. Peaks are over the phase; MiB.",
        "CPU: from /proc, each process's own user and system time and that of the "
        "children it waited for, summed over each role's process tree (the flow-run "
        "processes count in the worker or warm parent that reaped them); PostgreSQL is "
        "the whole database server, Prefect's database and Dealflow's.",
        "The baseline runs after ours on the same stack, with ours' deals still waiting "
        "(suspended at acceptance).",
        "Prefect's `suspend_flow_run` sets the PAUSED state first and stores the input "
        'schema after it; a resume in between is refused ("schema not found") and tried '
        "again (`dealflow.infra.prefect_api.resume_with_input`, used by the web service and here), "
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
    baseline = (
        "The baseline is a bare flow\nwith as many suspends and no work (`bare_suspends` in "
        "bench/load.py) on the same pool\nand workers, its runs created and resumed with "
        "`resume_flow_run` by as many clients."
        if len(phases) > 1
        else "No baseline in this run (`--skip-baseline`): the smaller run's section sets "
        "ours\nbeside Prefect's stock path."
    )
    return f"""{section_title(ours.count, info.warm)}

{ours.count} deals submitted with `POST /api/deals` and approved by a load script
through the approval links of their emails (the page's form, `decision=approve`), on
the production path (docs/deployment.md): Prefect's server and Dealflow on PostgreSQL,
a process work pool capped at {info.pool_limit} runs at once, two `dealflow worker` processes
polling every second and starting runs {"warm (forked from the warm parent)" if info.warm else "cold (`--cold`: each run a fresh interpreter, as Prefect's own worker starts it)"}, the web service as two uvicorn processes. {info.concurrency}
concurrent HTTP clients; approvals go before submissions. {baseline}

{info.record.header(SCRIPT)}
- Deal: {info.example}; route `{info.route.rule}`: {gates}, then the signing and acceptance
  waits ({len(info.route.gates) + 2} suspends per deal; the baseline suspends as often)

{main_table}

The same latency, split where the approval POST (the `resume_flow_run` call) returned:

{split_table}

Peak memory, MiB:

{memory_table}

CPU-seconds over each phase, by role (until its last run process was gone):

{cpu_table(phases)}

{notes_text}
"""
