"""A Prefect process worker that takes a run of its pool as soon as the run is scheduled.

Prefect's worker finds new runs by polling: a deal resumed by an approval waits for the
next poll, half the poll interval on average, before its run starts. This worker also
listens to the Prefect server's event stream and polls at once when a run of its pool
becomes Scheduled (a resumed deal, a new one, a run the sla-sweep started again). The
regular poll stays, so a lost event stream costs only that half-interval again.

With several workers on the pool, one of them answers each event: the one the run's id
prefers among the pool's online workers (rendezvous hashing, no coordination). Were all
to poll, the losers' attempts would show in the run's logs in the Prefect UI as
submissions aborted."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
from prefect.client.schemas.objects import FlowRun
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult

from dealflow.warm.run_client import PATIENCE_SECONDS, RETRY_SECONDS, unreachable

# After the event stream is lost (a server restart), try again this often.
RECONNECT_SECONDS = 5.0
# How long the list of the pool's online workers is trusted.
TEAM_SECONDS = 15.0


def serve(pool: str, name: str | None) -> None:
    """Run a process worker of ``pool`` until it is interrupted (SIGINT, or SIGTERM as
    Prefect's own worker takes it: a second one kills)."""
    from prefect.utilities.processutils import setup_signal_handlers_worker

    setup_signal_handlers_worker(os.getpid(), "the process worker", _say)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(pool, name))
    _say("Worker stopped")


async def _serve(pool: str, name: str | None) -> None:
    from prefect.settings import PREFECT_WORKER_HEARTBEAT_SECONDS

    worker = PatientProcessWorker(
        name=name,
        work_pool_name=pool,
        heartbeat_interval_seconds=int(PREFECT_WORKER_HEARTBEAT_SECONDS.value()),
    )
    listener = asyncio.create_task(poll_when_scheduled(worker, pool))
    try:
        await worker.start(printer=_print)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


class PatientProcessWorker(ProcessWorker):
    """Prefect's process worker, but a run it could not start because the Prefect server
    was unreachable is started again once the server answers, instead of being reported
    Crashed (its deal then waited for the next sweep).

    Before a run's process starts, Prefect's worker connects to the server's event
    stream; a server killed at that moment failed the submission. No process had been
    started for the run, so starting it again runs it once.
    """

    @classmethod
    def __dispatch_key__(cls) -> str:
        # Registered apart from Prefect's "process" worker, which it does not replace.
        return "dealflow-process"

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
    ) -> ProcessWorkerResult:
        watched = _StartWatch(task_status or anyio.TASK_STATUS_IGNORED)
        deadline = time.monotonic() + PATIENCE_SECONDS
        said = False
        while True:
            try:
                return await super().run(flow_run, configuration, watched)
            except Exception as exc:
                if watched.has_started or not unreachable(exc) or time.monotonic() > deadline:
                    raise
                if not said:
                    _say(
                        f"could not start flow run {flow_run.id}: the Prefect server is "
                        f"unreachable ({type(exc).__name__}); trying again for up to "
                        f"{PATIENCE_SECONDS:.0f} s"
                    )
                    said = True
                await _until_reachable(self, deadline)


class _StartWatch:
    """The task status handed to Prefect's ``run``, noting whether the run's process
    started (after which a failure is the run's own, reported as Prefect reports it)."""

    def __init__(self, given: Any) -> None:
        self.given = given
        self.has_started = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.given, name)

    def started(self, value: Any = None) -> None:
        self.has_started = True
        self.given.started(value)


async def _until_reachable(worker: PatientProcessWorker, deadline: float) -> None:
    while time.monotonic() < deadline:
        await asyncio.sleep(RETRY_SECONDS)
        if await worker.client.api_healthcheck() is None:
            return


async def poll_when_scheduled(worker: ProcessWorker, pool: str) -> None:
    """Poll once more each time the server says a run of ``pool`` became Scheduled; the
    events that arrive while a poll runs are answered by one more poll after it."""
    wanted = asyncio.Event()
    poller = asyncio.create_task(_poll_when_wanted(worker, wanted))
    team = Team(pool, worker.name)
    down = asyncio.Event()  # said once per outage

    def connected() -> None:
        if down.is_set():
            _say("event stream back")
        down.clear()

    try:
        while True:
            try:
                await _listen(pool, wanted, team, connected)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server restarting, or not up yet
                if not down.is_set():
                    _say(f"event stream unavailable ({type(exc).__name__}); polling only")
                down.set()
            await asyncio.sleep(RECONNECT_SECONDS)
    finally:
        poller.cancel()


async def _listen(
    pool: str, wanted: asyncio.Event, team: Team, connected: Callable[[], None]
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventRelatedFilter,
        EventResourceFilter,
    )
    from prefect.events.schemas.events import ResourceSpecification

    async with get_client() as client:
        pool_id = (await client.read_work_pool(pool)).id
    # The subscriber sets the time window itself: from a minute ago, open-ended.
    scheduled_in_this_pool = EventFilter(
        event=EventNameFilter(prefix=["prefect.flow-run."]),
        resource=EventResourceFilter(
            labels=ResourceSpecification({"prefect.state-type": "SCHEDULED"})
        ),
        related=EventRelatedFilter(id=[f"prefect.work-pool.{pool_id}"]),
    )
    async with get_events_subscriber(filter=scheduled_in_this_pool) as events:
        connected()
        wanted.set()  # what was scheduled while the stream was down
        async for event in events:
            if event.resource.get("prefect.state-type") != "SCHEDULED":
                continue
            if await team.takes(event.resource.id):
                wanted.set()


class Team:
    """The pool's online workers, as this one sees them."""

    def __init__(self, pool: str, me: str) -> None:
        self.pool = pool
        self.me = me
        self.names: list[str] = []
        self.read_at = -TEAM_SECONDS

    async def takes(self, run: str) -> bool:
        """Whether this worker is the one to answer ``run``'s event."""
        if time.monotonic() - self.read_at > TEAM_SECONDS:
            with contextlib.suppress(Exception):  # asked again at the next event
                self.names = await self._online()
                self.read_at = time.monotonic()
        if self.me not in self.names:  # not yet seen online: answer, to be sure
            return True
        return max(self.names, key=lambda name: _weight(run, name)) == self.me

    async def _online(self) -> list[str]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus

        online = WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"]))
        async with get_client() as client:
            workers = await client.read_workers_for_work_pool(self.pool, worker_filter=online)
        return [w.name for w in workers]


def _weight(run: str, worker: str) -> bytes:
    return hashlib.sha256(f"{run}/{worker}".encode()).digest()


async def _poll_when_wanted(worker: ProcessWorker, wanted: asyncio.Event) -> None:
    while True:
        await wanted.wait()
        wanted.clear()
        try:
            await worker.get_and_submit_flow_runs()
        except Exception as exc:  # the regular poll reports what keeps failing
            _say(f"an early poll failed ({type(exc).__name__}: {exc})")


def _print(message: object = "", *_: object, **__: object) -> None:
    print(message, flush=True)


def _say(message: object = "", *_: object, **__: object) -> None:
    print(f"dealflow worker: {message}", file=sys.stderr, flush=True)
