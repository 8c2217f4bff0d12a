"""Which runs the sweep may start again when their process was lost."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml

from models.settings import PROJECT_ROOT, get_settings
from tasks.recovery import DEALFLOW_FLOWS, RECOVERED_TAG, recover_lost_runs
from tests.support import dealflow


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
