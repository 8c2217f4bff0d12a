"""The load benchmark's baseline: bare Prefect runs that only suspend, driven like our deals.

``bare_suspends`` suspends as many times as a deal does and does nothing else; it
imports nothing of Dealflow, so each of its flow-run processes costs what Prefect alone
costs. It is deployed to the stack's work pool and run by the same workers as the
deals. Its runs are created and, each time one is PAUSED at its next gate, resumed
with ``resume_flow_run`` by as many clients as ours has.

The workers load the flow from its entrypoint in bench/load.py (where RESULTS.md says it
is), which hands over ``baseline_flow()``; it is built when first asked for, so that
importing these modules does not import Prefect before the stack's environment is set.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.client_pool import URGENT, Clients
from bench.process_trees import MemoryPeaks
from bench.script import PROJECT_ROOT
from bench.under_load import PhaseResult, UnderLoad, spans

if TYPE_CHECKING:
    from prefect import Flow

BASELINE_NAME = "bare-load"
BASELINE_DEPLOYMENT = f"{BASELINE_NAME}/{BASELINE_NAME}"
BASELINE_ENTRYPOINT = "bench/load.py:bare_suspends"  # relative to PROJECT_ROOT
STATE_POLL_SECONDS = 0.25  # how often the baseline asks which of its runs reached a gate
STATE_POLL_RUNS = 1000  # run ids per such query


@functools.cache
def baseline_flow() -> Flow[..., str]:
    """The baseline: a flow that suspends ``suspends`` times (keys gate-0, gate-1, ...) and
    does nothing else. It imports nothing of Dealflow, so each of its flow-run processes
    costs what Prefect alone costs; the deal flow suspends once per gate and twice more,
    for the signed contract and the delivery acceptance."""
    from prefect import flow, suspend_flow_run

    from bench.bare_flow import Go

    @flow(name=BASELINE_NAME, persist_result=False)
    def bare_suspends(suspends: int = 2) -> str:
        for number in range(suspends):
            suspend_flow_run(wait_for_input=Go, key=f"gate-{number}")
        return "done"

    return bare_suspends


def register_baseline() -> uuid.UUID:
    """Deploy ``bare_suspends`` to the stack's work pool: from this checkout (its pull step
    sets the working directory, as prefect.yaml's does), run by the same workers."""
    import inspect

    from prefect import Flow

    from dealflow.stack.local import WORK_POOL

    source_flow = Flow.from_source(source=str(PROJECT_ROOT), entrypoint=BASELINE_ENTRYPOINT)
    assert isinstance(source_flow, Flow)
    deployment = source_flow.to_deployment(name=BASELINE_NAME, work_pool_name=WORK_POOL)
    assert not inspect.isawaitable(deployment)
    deployment_id = deployment.apply()
    assert isinstance(deployment_id, uuid.UUID)
    return deployment_id


@dataclass
class ResumeSample:
    start: float  # monotonic, the resume call
    start_wall: float
    end: float | None = None
    paused_wall: float | None = None  # the timestamp of the run's next PAUSED state

    @property
    def end_wall(self) -> float | None:
        """When the call returned, on the wall clock the states' timestamps are on."""
        return None if self.end is None else self.start_wall + self.end - self.start


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


class BareUnderLoad(UnderLoad):
    """Creates the baseline runs and resumes each as soon as it is PAUSED."""

    unit = "runs"

    def __init__(self, deployment_id: uuid.UUID, count: int, suspends: int) -> None:
        super().__init__()
        self.deployment_id = deployment_id
        self.suspends = suspends
        self.tracks = [BareTrack(n) for n in range(count)]

    def _create(self, clients: Clients, track: BareTrack) -> None:
        track.create_start, track.create_start_wall = time.monotonic(), time.time()
        try:
            run = clients.prefect.create_flow_run_from_deployment(
                self.deployment_id, parameters={"suspends": self.suspends}
            )
        except Exception as exc:
            self.fail(track, f"creation failed: {type(exc).__name__}: {exc}")
            return
        with self.changed:
            track.run_id, track.in_transit = str(run.id), True

    def _resume(self, clients: Clients, track: BareTrack) -> None:
        from dealflow.infra.prefect_api import resume_with_input

        assert track.run_id is not None
        sample = ResumeSample(start=time.monotonic(), start_wall=time.time())
        track.resumes.append(sample)
        try:
            resume_with_input(track.run_id, {"approved": True})  # retries "schema not found"
        except Exception as exc:
            self.fail(track, f"resume failed: {type(exc).__name__}: {exc}")
            return
        sample.end = time.monotonic()
        with self.changed:
            track.in_transit = True

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
            self.moved()

    def finished(self) -> int:
        return sum(1 for t in self.tracks if t.done_wall is not None or t.error)

    def run(self, concurrency: int, timeout: float, stall: float) -> tuple[float, float]:
        """Create every run, resume each at each gate; (start, end) monotonic."""
        stop = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(stop,), name="watcher", daemon=True)
        watcher.start()
        creations = [functools.partial(self._create, track=track) for track in self.tracks]
        try:
            start, start_wall = self.drive(creations, concurrency, timeout, stall)
        finally:
            stop.set()
            watcher.join(timeout=30)
        # The runs' ends are the timestamps of their states: on the server's wall clock.
        end_wall = max((t.done_wall for t in self.tracks if t.done_wall), default=time.time())
        return start, start + (end_wall - start_wall)

    def result(
        self, window: tuple[float, float], memory: MemoryPeaks, other: dict[str, int]
    ) -> PhaseResult:
        resumes = [r for t in self.tracks for r in t.resumes]
        return PhaseResult(
            name="baseline",
            count=len(self.tracks),
            done=sum(1 for t in self.tracks if t.done_wall is not None),
            failures=[f"run {t.run_id}: {t.error}" for t in self.tracks if t.error],
            wall=window[1] - window[0],
            latencies=spans((r.start_wall, r.paused_wall) for r in resumes),
            to_first_gate=spans((t.create_start_wall, t.first_paused_wall) for t in self.tracks),
            call_seconds=spans((r.start, r.end) for r in resumes),
            after_call=spans((r.end_wall, r.paused_wall) for r in resumes),
            memory=memory,
            other_runs=other,
        )
