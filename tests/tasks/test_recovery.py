"""Which runs the sweep may start again when their process was lost."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml

from dealflow.infra.db import session_scope
from dealflow.infra.records import get_approval, timeline
from harness.mail import decide, to
from harness.runs import wait_for_state
from models.settings import PROJECT_ROOT, get_settings
from tasks.recovery import (
    DEALFLOW_FLOWS,
    RECOVERED_TAG,
    find_half_suspended_runs,
    recover_lost_runs,
)
from tests.conftest import Inbox
from tests.faults import wait_until
from tests.support import deal_waiting_at_manager, dealflow


def test_every_deployed_flow_is_one_whose_lost_runs_are_started_again() -> None:
    """Each flow of prefect.yaml is idempotent by our keys, and the recovery knows it."""
    declared = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"]
    assert sorted(DEALFLOW_FLOWS) == sorted(d["name"] for d in declared)


@pytest.mark.stack
def test_a_run_that_keeps_losing_its_process_is_left_crashed_for_a_person(stack: Any) -> None:
    """Past the limit the run stops holding a slot of the pool: Crashed, saying why, once."""
    from prefect.client.orchestration import get_client
    from prefect.states import Pending

    limit = get_settings().max_run_recoveries
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("payment-check/payment-check")
        # Pending, as a worker killed while submitting it leaves it; no worker takes it.
        run = client.create_flow_run_from_deployment(
            deployment.id,
            state=Pending(),
            tags=[f"{RECOVERED_TAG}:{n}" for n in range(1, limit + 1)],
        )
        try:
            quiet_long_enough = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
            said = recover_lost_runs.fn(now=quiet_long_enough, only=[run.id])
            assert said == [
                f"left run {run.name} ({run.id}) crashed: already scheduled again {limit} "
                "times; look at its logs"
            ]
            state = client.read_flow_run(run.id).state
            assert state is not None and state.type.value == "CRASHED"
            assert f"scheduled this run again {limit} times" in str(state.message)
            assert "look at its logs, then retry it" in str(state.message)

            # The next sweeps name it again and leave it as it is.
            assert recover_lost_runs.fn(now=quiet_long_enough, only=[run.id]) == said
            again = client.read_flow_run(run.id).state
            assert again is not None and again.id == state.id
        finally:
            client.delete_flow_run(run.id)


def test_recover_names_a_run_id_it_cannot_read() -> None:
    failed = dealflow("runs", "recover", "not-a-run", check=False)
    assert failed.returncode != 0
    assert "Not a flow run id: 'not-a-run'" in failed.stderr + failed.stdout


@pytest.mark.stack
def test_a_run_killed_between_suspending_and_storing_its_input_schema_suspends_again(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    """Prefect stores a suspend in two writes: the Suspended state, then the schema of the
    input the run waits for. A kill between them leaves a run that looks suspended at its
    gate while Prefect refuses every resume; the sweep finds it and starts it again, and
    the approver's link works without a second email."""
    from prefect.client.orchestration import get_client

    deal_id, run_id, link = deal_waiting_at_manager(inbox, tmp_path)
    with get_client(sync_client=True) as client:
        suspended = client.read_flow_run(UUID(run_id)).state
        assert suspended is not None and suspended.state_details.run_input_keyset
        # What the kill leaves: the Suspended state, no schema.
        client.delete_flow_run_input(
            UUID(run_id), suspended.state_details.run_input_keyset["schema"]
        )
    refused = decide(link, "approve", "before the sweep")
    # The approver is told to come back, not that the deal needs nothing from them.
    assert refused.status_code == 503 and "being restarted" in refused.text, refused.text
    assert "schema" not in refused.text, "Prefect's own words stay in the log"
    assert _decision_of(deal_id, "manager") is None

    quiet = get_settings().stalled_run_seconds + 1
    quiet_long_enough = suspended.timestamp + dt.timedelta(seconds=quiet)
    # The sweep finds it among the runs that suspended lately (Prefect's events).
    with get_client(sync_client=True) as client:
        wait_until(
            lambda: (
                run_id
                in [
                    str(lost.run.id) for lost in find_half_suspended_runs(client, quiet_long_enough)
                ]
            ),
            60,
            "the half-suspended run found by the sweep",
        )
    said = recover_lost_runs.fn(now=quiet_long_enough, only=[UUID(run_id)])
    assert said == [
        f"scheduled deal {deal_id} ({run_id}) again: its process died while it suspended "
        f"at gate-manager, {quiet} s ago"
    ]

    def suspended_again() -> bool:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(run_id)).state
        return (
            state is not None
            and state.id != suspended.id
            and (state.type.value, state.state_details.pause_key) == ("PAUSED", "gate-manager")
        )

    wait_until(suspended_again, 120, "the run suspended at the manager's gate again")
    assert decide(link, "approve", "after the sweep").status_code == 200
    inbox.wait_for(to("dana.whitfield@example.com", "Approval needed", deal_id))
    wait_for_state(run_id, "PAUSED", key="gate-director")
    assert _decision_of(deal_id, "manager") == "approved"
    requests = [
        m
        for m in inbox.messages
        if str(m["X-Dealflow-Key"]) == f"deal/{deal_id}/gate/manager/request"
    ]
    assert len(requests) == 1, "the manager was asked once"
    with session_scope() as session:
        keys = [step.key for step in timeline(session, deal_id)]
    assert f"run/recovered/{suspended.id}" in keys


def test_a_run_crashed_after_it_suspended_suspends_again_when_started_again(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    """A process killed after its run suspended, before it exited: the worker marks the
    run Crashed over its Suspended state. Started again by the sweep, the run suspends at
    the same gate afresh (Prefect would otherwise take that suspend as done and hand the
    run an empty answer), and the approver's link decides it."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    deal_id, run_id, link = deal_waiting_at_manager(inbox, tmp_path)
    with get_client(sync_client=True) as client:
        suspended = client.read_flow_run(UUID(run_id)).state
        assert suspended is not None
        # What the worker reports for a flow-run process killed with SIGKILL.
        client.set_flow_run_state(
            UUID(run_id), Crashed(message="Process exited with status code: -9."), force=True
        )
    said = recover_lost_runs.fn(only=[UUID(run_id)])
    assert said and said[0].startswith(f"scheduled deal {deal_id} ({run_id}) again"), said

    def suspended_again() -> bool:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(run_id)).state
        assert state is not None
        assert state.type.value != "FAILED", state.message
        return state.id != suspended.id and (
            state.type.value,
            state.state_details.pause_key,
        ) == ("PAUSED", "gate-manager")

    wait_until(suspended_again, 120, "the run suspended at the manager's gate again")
    assert decide(link, "approve", "after the sweep").status_code == 200
    inbox.wait_for(to("dana.whitfield@example.com", "Approval needed", deal_id))
    wait_for_state(run_id, "PAUSED", key="gate-director")
    assert _decision_of(deal_id, "manager") == "approved"


def test_a_run_failed_because_a_worker_marked_it_crashed_is_started_again(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    """A process killed as it exited, after its run suspended: its worker marks the run
    Crashed while the run, resumed meanwhile, runs in another process, which then fails
    to go on. The sweep starts that run again; a run that failed in our code it leaves."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed, Failed

    deal_id, run_id, link = deal_waiting_at_manager(inbox, tmp_path)
    refused = "Flow run encountered an exception: RuntimeError: Flow run cannot be suspended: Run is already in terminal state CRASHED."
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(run_id), Failed(message="a bug of ours"), force=True)
        assert recover_lost_runs.fn(only=[UUID(run_id)]) == [], "failed in our code: left"
        client.set_flow_run_state(
            UUID(run_id), Crashed(message="Process exited with status code: -9."), force=True
        )
        client.set_flow_run_state(UUID(run_id), Failed(message=refused), force=True)
    said = recover_lost_runs.fn(only=[UUID(run_id)])
    assert said == [
        f"scheduled deal {deal_id} ({run_id}) again: a worker marked its run crashed while "
        f"another process ran it on, and that process could not go on ({refused})"
    ]
    wait_for_state(run_id, "PAUSED", timeout=120, key="gate-manager")
    assert decide(link, "approve", "after the sweep").status_code == 200
    inbox.wait_for(to("dana.whitfield@example.com", "Approval needed", deal_id))
    assert _decision_of(deal_id, "manager") == "approved"


def _decision_of(deal_id: str, gate: str) -> str | None:
    with session_scope() as session:
        row = get_approval(session, deal_id, gate)
        return row.decision if row else None
