"""What the load benchmark's two drivers share: the loop that drives N deals or runs at once.

Ours (bench/deals_under_load.py) and the bare baseline (bench/bare_under_load.py) are
driven alike so that their figures compare: one submission or creation per deal or run
queued on the same client pool, the approvals or resumes queued before them as their
gates are reached, and one wait until every deal or run is done or failed, given up
after a timeout or when nothing moved for a while. Each phase ends in a PhaseResult.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bench.client_pool import LATER, ClientPool, Job
from bench.process_trees import MemoryPeaks
from bench.script import BenchError, say

PROGRESS_SECONDS = 15  # how often the wait says how far it got


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
    # CPU seconds by role over the phase (its runs' processes gone): "server", "web",
    # "workers" (with their warm parents and runs), "postgres" (the whole server)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def per_minute(self) -> float:
        return self.done / self.wall * 60 if self.wall > 0 else 0.0


def spans(moments: Iterable[tuple[float | None, float | None]]) -> list[float]:
    """``end - start`` of each (start, end) pair whose moments were both reached."""
    return [end - start for start, end in moments if start is not None and end is not None]


class Track(Protocol):
    error: str | None  # why the deal or run failed; the first reason stays


class UnderLoad:
    """A driver's shared state: the pool, the condition its threads and the waiting
    thread meet at, when anything last moved, and errors no deal or run took."""

    unit: str  # "deals" or "runs": what the progress lines and errors count

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.progress_at = time.monotonic()  # when a deal or run last moved
        self.pool: ClientPool | None = None
        self.stray_errors: list[str] = []  # a job's exception: a bug of this script

    def finished(self) -> int:
        """How many deals or runs are done or failed."""
        raise NotImplementedError

    def moved(self) -> None:
        """Note that a deal or run moved; the caller holds ``changed``."""
        self.progress_at = time.monotonic()
        self.changed.notify_all()

    def fail(self, track: Track, reason: str) -> None:
        with self.changed:
            track.error = track.error or reason
            self.moved()

    def _stray(self, exc: BaseException) -> None:
        with self.changed:
            self.stray_errors.append(f"{type(exc).__name__}: {exc}")
            self.moved()

    def drive(
        self, jobs: Sequence[Job], concurrency: int, timeout: float, stall: float
    ) -> tuple[float, float]:
        """Queue ``jobs`` (one submission or creation per deal or run) on a pool of
        ``concurrency`` clients and wait until each deal or run is done or failed; when
        it began, monotonic and wall clock."""
        self.pool = ClientPool(concurrency, self._stray)
        start, start_wall = time.monotonic(), time.time()
        with self.pool.running() as pool:
            for job in jobs:
                pool.submit(LATER, job)
            self._wait_all(len(jobs), start, timeout, stall)
        if self.stray_errors:
            raise BenchError(f"client errors: {self.stray_errors[:3]}")
        return start, start_wall

    def _wait_all(self, total: int, start: float, timeout: float, stall: float) -> None:
        """Until ``finished()`` reaches ``total``; BenchError after ``timeout`` seconds,
        when nothing moved for ``stall`` seconds, or at a stray error."""
        shown = start
        with self.changed:
            while (done := self.finished()) < total:
                if self.stray_errors:
                    raise BenchError(f"client errors: {self.stray_errors[:3]}")
                now = time.monotonic()
                if now - start > timeout:
                    raise BenchError(
                        f"{done} of {total} {self.unit} finished within {timeout:.0f}s"
                    )
                if now - self.progress_at > stall:
                    raise BenchError(
                        f"nothing moved for {stall:.0f}s; {done} of {total} {self.unit} done"
                    )
                if now - shown >= PROGRESS_SECONDS:
                    say(f"  {done}/{total} {self.unit} done after {now - start:.0f}s")
                    shown = now
                self.changed.wait(1.0)
