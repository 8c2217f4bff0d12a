"""Bringing back Dealflow runs whose process died: a worker, or its machine, lost mid-step.

Prefect leaves such a run Running (or Pending) for ever: nobody is left to report its
end, and it holds a slot of the work pool's concurrency limit. Every Dealflow flow is
idempotent by our own keys, so the cure is to schedule the run again: a worker executes
it from the top, finds what was done in our database, and goes on from there. A run
Crashed by its infrastructure is scheduled again the same way. Failed runs are not
touched: they failed in our code or on a permanent error, which operations must see.

A run can also die half-way through a suspend: Prefect stores the Suspended state, then
(a second request) the schema of the input the run waits for. Killed between the two,
the run looks suspended at its gate, but Prefect refuses every resume ("Run input schema
not found") and nothing ever starts it again. Such a run is scheduled again too, its
pause key forgotten, so that it suspends at the same gate afresh, whole.

A worker marks a run Crashed when the process it started for it dies, even when the run
had suspended in that process and was resumed, and runs, in another: that process then
fails on its next step ("Run is already in terminal state CRASHED"). A run Failed right
after it was Crashed is scheduled again too; one that failed in our code is not. The
sweep waits until a Crashed run has shown no sign of life for the configured time, so
that it never starts a run beside a process that still runs it.

A deal's run is started again only while it carries the deal: the run of a revision that
a later one replaced (the deal was rejected, revised and submitted again) is cancelled
instead, named "Superseded", since the new revision's run carries the deal.
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
    FlowRunFilterEndTime,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, FlowRunPolicy, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventResourceFilter,
)
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.input.run_input import keyset_from_base_key
from prefect.states import Cancelled, Crashed, Scheduled, State

from dealflow.infra.db import session_scope
from dealflow.infra.records import note_on_timeline, replaced_by
from models import keys
from models.revisions import superseded_message
from models.settings import get_settings
from models.tables import Deal
from tasks.effect import effect_task

# The flows of prefect.yaml: each is safe to run again from the top.
DEALFLOW_FLOWS = ["deal-handoff", "sla-sweep", "payment-check", "pipeline-report", "weekly-report"]
HEARTBEAT = "prefect.flow-run.heartbeat"
SUSPENDED = "prefect.flow-run.Suspended"
# How far back the sweep looks for runs that suspended: it runs every 15 minutes, so a
# day covers a sweep stopped for most of a day. Older ones: 'dealflow runs recover RUN_ID'.
SUSPENSIONS_LOOKBACK = dt.timedelta(days=1)
RECOVERED_TAG = "dealflow:recovered"


@dataclass(frozen=True)
class LostRun:
    run: FlowRun
    # RUNNING, PENDING, CRASHED (or Failed right after Crashed), or PAUSED without the
    # input's schema
    state: str
    quiet_since: dt.datetime  # the last sign of life: state change or heartbeat

    @property
    def deal_id(self) -> str | None:
        if self.run.parameters.get("deal_id") is None:
            return None
        return str(self.run.parameters["deal_id"])

    @property
    def revision(self) -> int:
        """The deal's revision the run carries (a deal run's; 1 when not given)."""
        return int(self.run.parameters.get("revision") or 1)

    def describe(self, now: dt.datetime) -> str:
        quiet = int((now - self.quiet_since).total_seconds())
        if self.state == "CRASHED" and self.run.state and self.run.state.type.value == "FAILED":
            return (
                "a worker marked its run crashed while another process ran it on, and that "
                f"process could not go on ({self.run.state.message})"
            )
        if self.state == "CRASHED":
            return f"its run crashed ({self.run.state.message if self.run.state else ''})".strip()
        if self.state == "PAUSED":
            key = self.run.state.state_details.pause_key if self.run.state else None
            return f"its process died while it suspended at {key}, {quiet} s ago"
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
    """Dealflow runs (of ``only``, if given) Running, Pending or Crashed without a
    heartbeat or state change for the configured time; the Crashed runs of ``only`` at
    once (a person asked for them)."""
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
        if state == "CRASHED" and only is not None:
            lost.append(LostRun(run, state, run.state.timestamp))
            continue
        # A sweep leaves a Crashed run alone while it shows signs of life: its worker may
        # have marked it Crashed while another process runs it on (module docstring).
        changed = run.state.timestamp
        if now - changed < quiet_limit:
            continue
        alive = _last_heartbeat(client, run.id, since=changed)
        if now - alive >= quiet_limit:
            lost.append(LostRun(run, state, alive))
    return lost + _failed_after_crashed(client, now, only)


def _failed_after_crashed(
    client: SyncPrefectClient, now: dt.datetime, only: Sequence[UUID] | None
) -> list[LostRun]:
    """Dealflow runs (of ``only``, or that ended lately) Failed right after Crashed."""
    runs = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=DEALFLOW_FLOWS)),
        flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=list(only)) if only is not None else None,
            deployment_id=FlowRunFilterDeploymentId(is_null_=False),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.FAILED])),
            end_time=(
                FlowRunFilterEndTime(after_=now - SUSPENSIONS_LOOKBACK) if only is None else None
            ),
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC,
        limit=200,
    )
    lost = []
    for run in runs:
        states = sorted(
            (s for s in client.read_flow_run_states(run.id) if s.timestamp is not None),
            key=lambda s: s.timestamp,
        )
        if len(states) >= 2 and states[-2].type == StateType.CRASHED and run.state is not None:
            lost.append(LostRun(run, "CRASHED", run.state.timestamp))
    return lost


def _recently_suspended(client: SyncPrefectClient, since: dt.datetime) -> list[UUID]:
    """Every run that entered a Suspended state since ``since``, by Prefect's events."""
    found: set[UUID] = set()
    page = client.read_events(
        filter=EventFilter(
            occurred=EventOccurredFilter(since=since),
            event=EventNameFilter(name=[SUSPENDED]),
        ),
        limit=50,
    )
    while True:
        found |= {
            UUID(event.resource.id.removeprefix("prefect.flow-run."))
            for event in page.events
            if event.resource.id.startswith("prefect.flow-run.")
        }
        if not page.next_page:
            return sorted(found)
        page = client.read_events_page(str(page.next_page))


def _has_input_schema(client: SyncPrefectClient, run: FlowRun) -> bool:
    assert run.state is not None
    keyset = run.state.state_details.run_input_keyset
    if not keyset:
        return True  # a pause that waits for no input: any resume goes through
    try:
        client.read_flow_run_input(run.id, keyset["schema"])
    except ObjectNotFound:
        return False
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code == 404:
            return False
        raise
    return True


def find_half_suspended_runs(
    client: SyncPrefectClient, now: dt.datetime, only: Sequence[UUID] | None = None
) -> list[LostRun]:
    """Dealflow runs (of ``only``, if given; else those that suspended lately) Paused for
    the configured time without the schema of the input they wait for."""
    quiet_limit = dt.timedelta(seconds=get_settings().stalled_run_seconds)
    ids = (
        list(only) if only is not None else _recently_suspended(client, now - SUSPENSIONS_LOOKBACK)
    )
    lost = []
    for start in range(0, len(ids), 200):
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=DEALFLOW_FLOWS)),
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=ids[start : start + 200]),
                deployment_id=FlowRunFilterDeploymentId(is_null_=False),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
            ),
            limit=200,
        )
        for run in runs:
            if run.state is None or now - run.state.timestamp < quiet_limit:
                continue
            if not _has_input_schema(client, run):
                lost.append(LostRun(run, "PAUSED", run.state.timestamp))
    return lost


def _forget_unanswered_pauses(client: SyncPrefectClient, run: FlowRun) -> None:
    """Let the run suspend again at every pause key it fired without being answered.

    A process killed after its run suspended, before it exited, gets the run marked
    Crashed by its worker: the pause key has fired, and no answer is stored for it.
    Started again, the run would reach that key, Prefect would take the suspend as done
    and hand the run an empty answer. Keys that were answered stay: the run finds its
    answer there, as with any resume."""
    fired = set(run.empirical_policy.pause_keys or ())
    unanswered = set()
    for key in fired:
        try:
            client.read_flow_run_input(run.id, keyset_from_base_key(f"suspended-{key}")["response"])
        except ObjectNotFound:
            unanswered.add(key)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 404:
                raise
            unanswered.add(key)
    if unanswered:
        policy = run.empirical_policy.model_dump()
        policy["pause_keys"] = fired - unanswered
        client.update_flow_run(run.id, empirical_policy=FlowRunPolicy(**policy))


def _forget_pause(client: SyncPrefectClient, run: FlowRun) -> None:
    """Let the run suspend at its current pause key again: Prefect rejects a key that
    fired once and would hand the run the input it never got."""
    assert run.state is not None
    key = run.state.state_details.pause_key
    policy = run.empirical_policy.model_dump()
    policy["pause_keys"] = set(policy.get("pause_keys") or ()) - {key}
    client.update_flow_run(run.id, empirical_policy=FlowRunPolicy(**policy))


@effect_task("recover-lost-runs")
def recover_lost_runs(
    now: dt.datetime | None = None, only: Sequence[UUID] | None = None
) -> list[str]:
    """Schedule again every Dealflow run (of ``only``, if given) that lost its process,
    crashed, or died half-way through a suspend, at most ``max_run_recoveries`` times
    each; what was done, one line per run.

    A run past that limit is marked Crashed, once, saying why: it no longer holds a slot
    of the pool's concurrency limit, and the Prefect UI shows it as what it is, a run for
    a person to look at (and to retry from there once its cause is fixed)."""
    settings = get_settings()
    done: list[str] = []
    now = now or dt.datetime.now(dt.UTC)
    with get_client(sync_client=True) as client:
        lost_runs = find_lost_runs(client, now, only) + find_half_suspended_runs(client, now, only)
        for lost in lost_runs:
            run, deal_id = lost.run, lost.deal_id
            assert run.state is not None
            current = client.read_flow_run(run.id).state
            if current is None or current.id != run.state.id:
                continue  # it moved on since it was read (another sweep, a resume)
            replaced = _replaced_by(lost)
            if replaced is not None:
                # Not the deal's run any more: its revision's run carries the deal.
                message = superseded_message(str(deal_id), lost.revision, replaced)
                cancelled: State[None] = Cancelled(name="Superseded", message=message)
                client.set_flow_run_state(run.id, cancelled, force=True)
                done.append(
                    f"cancelled deal {deal_id}'s revision {lost.revision} run ({run.id}) "
                    f"instead of scheduling it again: revision {replaced} replaced it"
                )
                continue
            if lost.state == "PAUSED":
                _forget_pause(client, run)
            else:
                _forget_unanswered_pauses(client, run)
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
                    keys.run_recovered(state_id),
                    f"Workflow run started again from its last step: {why}",
                )
            done.append(f"scheduled {what} ({run.id}) again: {why}")
    return done


def _replaced_by(lost: LostRun) -> int | None:
    """For a deal's run whose revision a later one replaced, the deal's current revision
    (the run must not be started again); None for any other run, or a deal not stored."""
    if lost.deal_id is None:  # only a deal's run names one
        return None
    with session_scope() as session:
        deal = session.get(Deal, lost.deal_id)
        if deal is None:
            return None
        return replaced_by(session, deal, lost.revision, str(lost.run.id))


def _give_up(client: SyncPrefectClient, lost: LostRun, recoveries: int, now: dt.datetime) -> None:
    why = (
        f"Dealflow scheduled this run again {recoveries} times and {lost.describe(now)} "
        "once more; look at its logs, then retry it"
    )
    client.set_flow_run_state(lost.run.id, Crashed(message=why), force=True)
    if lost.deal_id:
        note_on_timeline(
            lost.deal_id,
            keys.run_given_up(lost.run.id),
            f"Workflow run no longer started again by itself: {why}.",
        )
