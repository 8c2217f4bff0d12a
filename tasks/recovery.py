"""Bringing back Dealflow runs whose process died: a worker, or its machine, lost mid-step.

Prefect leaves such a run Running (or Pending) for ever: nobody is left to report its
end, and it holds a slot of the work pool's concurrency limit. Every Dealflow flow is
idempotent by our own keys, so the cure is to schedule the run again: a worker executes
it from the top, finds what was done in our database, and goes on from there. A run
Crashed by its infrastructure is scheduled again the same way. Failed runs are not
touched: they failed in our code or on a permanent error, which operations must see.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventResourceFilter,
)
from prefect.states import Crashed, Scheduled

from dealflow.records import note_on_timeline
from models.settings import get_settings
from tasks.effect import effect_task

# The flows of prefect.yaml: each is safe to run again from the top.
DEALFLOW_FLOWS = ["deal-handoff", "sla-sweep", "payment-check", "pipeline-report", "weekly-report"]
HEARTBEAT = "prefect.flow-run.heartbeat"
RECOVERED_TAG = "dealflow:recovered"


@dataclass(frozen=True)
class LostRun:
    run: FlowRun
    state: str  # RUNNING, PENDING or CRASHED
    quiet_since: dt.datetime  # the last sign of life: state change or heartbeat

    @property
    def deal_id(self) -> str | None:
        if self.run.parameters.get("deal_id") is None:
            return None
        return str(self.run.parameters["deal_id"])

    def describe(self, now: dt.datetime) -> str:
        quiet = int((now - self.quiet_since).total_seconds())
        if self.state == "CRASHED":
            return f"its run crashed ({self.run.state.message if self.run.state else ''})".strip()
        return f"its process was lost ({self.state.lower()}, no sign of life for {quiet} s)"


def _last_heartbeat(client: SyncPrefectClient, run_id: UUID, since: dt.datetime) -> dt.datetime:
    page = client.read_events(
        filter=EventFilter(
            occurred=EventOccurredFilter(since=since),
            event=EventNameFilter(name=[HEARTBEAT]),
            resource=EventResourceFilter(id=[f"prefect.flow-run.{run_id}"]),
        ),
        limit=1,
    )
    return max((event.occurred for event in page.events), default=since)


def find_lost_runs(
    client: SyncPrefectClient, now: dt.datetime, only: Sequence[UUID] | None = None
) -> list[LostRun]:
    """Dealflow runs (of ``only``, if given) Running or Pending without a heartbeat or
    state change for the configured time, and runs Crashed by their infrastructure."""
    settings = get_settings()
    quiet_limit = dt.timedelta(seconds=settings.stalled_run_seconds)
    runs = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=DEALFLOW_FLOWS)),
        flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=list(only)) if only is not None else None,
            deployment_id=FlowRunFilterDeploymentId(is_null_=False),
            state=FlowRunFilterState(
                type=FlowRunFilterStateType(
                    any_=[StateType.RUNNING, StateType.PENDING, StateType.CRASHED]
                )
            ),
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC,
        limit=200,
    )
    lost = []
    for run in runs:
        if run.state is None:
            continue
        state = run.state.type.value
        if state == "CRASHED":
            lost.append(LostRun(run, state, run.state.timestamp))
            continue
        changed = run.state.timestamp
        if now - changed < quiet_limit:
            continue
        alive = _last_heartbeat(client, run.id, since=changed)
        if now - alive >= quiet_limit:
            lost.append(LostRun(run, state, alive))
    return lost


@effect_task("recover-lost-runs")
def recover_lost_runs(
    now: dt.datetime | None = None, only: Sequence[UUID] | None = None
) -> list[str]:
    """Schedule again every Dealflow run (of ``only``, if given) that lost its process or
    crashed, at most ``max_run_recoveries`` times each; what was done, one line per run.

    A run past that limit is marked Crashed, once, saying why: it no longer holds a slot
    of the pool's concurrency limit, and the Prefect UI shows it as what it is, a run for
    a person to look at (and to retry from there once its cause is fixed)."""
    settings = get_settings()
    done: list[str] = []
    now = now or dt.datetime.now(dt.UTC)
    with get_client(sync_client=True) as client:
        for lost in find_lost_runs(client, now, only):
            run, deal_id = lost.run, lost.deal_id
            assert run.state is not None
            recoveries = sum(1 for tag in run.tags if tag.startswith(RECOVERED_TAG))
            what = f"deal {deal_id}" if deal_id else f"run {run.name}"
            if recoveries >= settings.max_run_recoveries:
                if lost.state != "CRASHED":
                    _give_up(client, lost, recoveries, now)
                done.append(
                    f"left {what} ({run.id}) crashed: already scheduled again "
                    f"{recoveries} times; look at its logs"
                )
                continue
            state_id = run.state.id
            client.set_flow_run_state(run.id, Scheduled(), force=True)
            client.update_flow_run(run.id, tags=[*run.tags, f"{RECOVERED_TAG}:{recoveries + 1}"])
            why = lost.describe(now)
            if deal_id:
                note_on_timeline(
                    deal_id,
                    f"run/recovered/{state_id}",
                    f"Workflow run started again from its last step: {why}",
                )
            done.append(f"scheduled {what} ({run.id}) again: {why}")
    return done


def _give_up(client: SyncPrefectClient, lost: LostRun, recoveries: int, now: dt.datetime) -> None:
    why = (
        f"Dealflow scheduled this run again {recoveries} times and {lost.describe(now)} "
        "once more; look at its logs, then retry it"
    )
    client.set_flow_run_state(lost.run.id, Crashed(message=why), force=True)
    if lost.deal_id:
        note_on_timeline(
            lost.deal_id,
            f"run/given-up/{lost.run.id}",
            f"Workflow run no longer started again by itself: {why}.",
        )
