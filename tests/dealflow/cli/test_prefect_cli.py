"""`dealflow prefect ...`: Prefect's own CLI on Dealflow's Prefect server, as a person
runs it from a plain shell (no PREFECT_* settings), writing nothing in the home folder."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from harness.runs import wait_for_state
from tests.support import dealflow, prefect_http


def plain_shell(home: Path, **settings: str) -> dict[str, str]:
    """The environment of a person's shell: no Prefect settings, a home folder of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DEALFLOW_"))}
    auth = os.environ.get("PREFECT_API_AUTH_STRING")  # the production path's stack
    return {
        **env,
        "HOME": str(home),
        **({"PREFECT_API_AUTH_STRING": auth} if auth else {}),
        **settings,
    }


def test_prefect_runs_against_dealflow_s_server_with_its_home_in_the_data_folder(
    tmp_path: Path,
) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    env = plain_shell(
        home, DEALFLOW_DATA_DIR=str(data), DEALFLOW_PREFECT_API_URL="http://127.0.0.1:5999/api"
    )
    shown = dealflow("prefect", "config", "view", cwd=tmp_path, env=env).stdout
    assert "PREFECT_API_URL='http://127.0.0.1:5999/api'" in shown
    assert f"PREFECT_HOME='{data.resolve() / 'prefect'}'" in shown
    assert list(home.iterdir()) == [], "nothing written in the home folder"
    helped = dealflow("prefect", "--help", cwd=tmp_path, env=env).stdout
    assert "Usage: dealflow prefect" in helped and "http://127.0.0.1:5999/api" in helped
    prefects_own = dealflow("prefect", cwd=tmp_path, env=env).stdout
    assert "deployment" in prefects_own, "alone, it shows Prefect's own commands"


@pytest.mark.stack
def test_a_deployment_runs_on_the_stack_from_the_cli(stack: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = plain_shell(
        home,
        DEALFLOW_DATA_DIR=str(stack.config.data_dir),
        DEALFLOW_PREFECT_API_URL=stack.config.prefect_api_url,
    )
    started = dealflow(
        "prefect", "deployment", "run", "sla-sweep/sla-sweep", cwd=tmp_path, env=env
    ).stdout
    assert "Created flow run" in started, started
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", started)
    assert run_id is not None, started
    run = prefect_http().get(f"flow_runs/{run_id[1]}")
    assert run.status_code == 200, run.text
    deployment = prefect_http().get(f"deployments/{run.json()['deployment_id']}")
    assert deployment.json()["name"] == "sla-sweep", "a run of the deployment, on the stack"
    # The stack's worker takes it, as it would take a run started from the Prefect UI.
    wait_for_state(run_id[1], "COMPLETED", timeout=120)
    assert list(home.iterdir()) == []
