"""`dealflow payments check` and `dealflow sla sweep` start a run of their deployment and
wait for it: a run that nothing picks up is cancelled, not left to run later beside the
one the user then starts with --here."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from dealflow.cli.deployment_runs import _run_of_deployment
from harness.runs import run_state

pytestmark = pytest.mark.stack


def test_a_run_nothing_picks_up_is_cancelled_and_the_command_says_why(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("payment-check")
        deployment_id = client.create_deployment(flow_id=flow_id, name="nobody-runs-this")
    try:
        with pytest.raises(typer.Exit):
            _run_of_deployment(
                "payment-check/nobody-runs-this", {"now": None}, "the payment check", patience=2
            )
    finally:
        # The stack is shared: other tests count its deployments against prefect.yaml.
        with get_client(sync_client=True) as client:
            client.delete_deployment(deployment_id)
    said = capsys.readouterr().err
    assert "nothing picked up its run within 2 s, so it was cancelled" in said, said
    run_id = said.split("/runs/flow-run/")[1].split()[0]
    assert run_state(run_id)[0] == "CANCELLED"
