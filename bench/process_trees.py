"""Memory and CPU of the stack's process trees, read from /proc.

A role of the stack (the Prefect server, the web service, a worker) is a process with
children: uvicorn's workers, the flow-run processes a worker starts. Its memory is the
sum over its tree, sampled in a thread while the benchmark runs, and a worker's children
are counted apart: they are the flow runs executing, and their number is what the work
pool's limit bounds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.script import BenchError

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 0.5  # memory sampling interval
DRAIN_TIMEOUT = 180.0  # for the workers to have no flow-run process left

Roles = dict[str, list[int]]  # "server", "web", "workers" -> the pids of their trees' roots


def stat_fields(pid: int | str) -> list[bytes]:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces),
    so that field n of proc(5) is at index n - 3. OSError when the process is gone."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return stat.read().rsplit(b")", 1)[1].split()


def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, resident bytes) of every process on the machine, from /proc."""
    found: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = stat_fields(entry.name)
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


def tree_pss(pid: int, children: dict[int, list[int]]) -> int:
    """Proportional set size of ``pid`` and all its descendants: a page shared by n of
    them counts 1/n in each, so forks of one warm parent sum to what they really hold."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += _pss(current)
        todo.extend(children.get(current, ()))
    return total


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass  # ended meanwhile, or not ours to read
    return 0


def tree_cpu_seconds(roots: Sequence[int], reaped: bool = False) -> float:
    """CPU seconds (user + system) the live processes of these trees have used; with
    ``reaped``, also that of the children each has waited for, so that processes which
    came and went (flow runs) count in the worker or warm parent that reaped them."""
    fields_of_time = (11, 12, 13, 14) if reaped else (11, 12)  # utime stime cutime cstime
    children = children_map(process_table())
    total, todo = 0, list(roots)
    while todo:
        pid = todo.pop()
        try:
            fields = stat_fields(pid)
            total += sum(int(fields[n]) for n in fields_of_time)
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(children.get(pid, ()))
    return total / TICKS


def postgres_roots() -> list[int]:
    """The PostgreSQL server's main process (its backends are its children)."""
    found = []
    for pid, (parent, _rss) in process_table().items():
        if _command(pid) == b"postgres" and _command(parent) != b"postgres":
            found.append(pid)
    return found


def _command(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/comm", "rb") as comm:
            return comm.read().strip()
    except OSError:
        return b""


def cpu_by_role(roles: Roles) -> dict[str, float]:
    """CPU seconds spent so far by each role's trees, and by the PostgreSQL server."""
    spent = {role: tree_cpu_seconds(pids, reaped=True) for role, pids in roles.items()}
    spent["postgres"] = tree_cpu_seconds(postgres_roots(), reaped=True)
    return spent


def cpu_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {role: after[role] - before.get(role, 0.0) for role in after}


@dataclass
class MemorySample:
    """One look at /proc. Bytes; ``flow`` holds each worker child's process tree."""

    at: float  # monotonic
    server: int
    web: int
    workers_own: list[int]  # each worker process alone
    flow: dict[int, int]  # pid of a flow-run process (a worker's child) -> its tree's bytes
    # The warm parents of `dealflow worker`s with the runs they forked (resident bytes of
    # each process summed: the pages the forks share with the parent count once per fork).
    warm: int = 0
    # The workers' whole trees (worker, warm parent, launchers, runs), proportional set
    # size: what they hold in memory, shared pages counted once.
    workers_pss: int = 0

    @property
    def workers_total(self) -> int:
        return sum(self.workers_own) + sum(self.flow.values()) + self.warm


def sample_memory(roles: Roles) -> MemorySample:
    processes = process_table()
    children = children_map(processes)
    flow: dict[int, int] = {}
    warm = 0
    for worker in roles["workers"]:
        for child in children.get(worker, ()):
            if _is_warm_parent(child):
                warm += tree_rss(child, processes, children)
            else:
                flow[child] = tree_rss(child, processes, children)
    return MemorySample(
        at=time.monotonic(),
        server=sum(tree_rss(pid, processes, children) for pid in roles["server"]),
        web=sum(tree_rss(pid, processes, children) for pid in roles["web"]),
        workers_own=[processes.get(pid, (0, 0))[1] for pid in roles["workers"]],
        flow=flow,
        warm=warm,
        workers_pss=sum(tree_pss(pid, children) for pid in roles["workers"]),
    )


def _is_warm_parent(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"dealflow.warm.parent" in cmdline.read()
    except OSError:
        return False


class MemorySampler:
    """Samples the stack's process trees every ``interval`` seconds in a thread."""

    def __init__(self, roles: Roles, interval: float = SAMPLE_SECONDS) -> None:
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
    workers_pss: int = 0  # workers and everything they started, shared pages once


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
        workers_pss=max(s.workers_pss for s in samples),
    )


def wait_workers_idle(roles: Roles, timeout: float = DRAIN_TIMEOUT) -> None:
    """Until no worker has a child process (no flow run is executing) but its warm parent."""
    deadline = time.monotonic() + timeout
    while sample_memory(roles).flow:
        if time.monotonic() > deadline:
            raise BenchError(f"the workers still run flow processes after {timeout:.0f}s")
        time.sleep(0.5)
