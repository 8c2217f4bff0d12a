"""Which runs the sweep may start again when their process was lost."""

from __future__ import annotations

import yaml

from models.settings import PROJECT_ROOT
from tasks.recovery import DEALFLOW_FLOWS


def test_every_deployed_flow_is_one_whose_lost_runs_are_started_again() -> None:
    """Each flow of prefect.yaml is idempotent by our keys, and the recovery knows it."""
    declared = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"]
    assert sorted(DEALFLOW_FLOWS) == sorted(d["name"] for d in declared)
