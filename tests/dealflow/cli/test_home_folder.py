"""Dealflow writes nothing into the user's home folder: matplotlib's configuration and font
cache (``~/.config/matplotlib``, ``~/.cache/matplotlib``) and Prefect's home go into the
data folder, unless the user points them elsewhere (MPLCONFIGDIR, PREFECT_HOME)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dealflow.stack.config import StackConfig, stack_env
from models.settings import PROJECT_ROOT
from tests.support import dealflow

# What would send matplotlib or Prefect somewhere other than where Dealflow puts them.
ELSEWHERE = {"MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "PREFECT_HOME"}


def empty_home_env(tmp_path: Path) -> dict[str, str]:
    """A user's environment with an empty home folder and the data folder under tmp_path."""
    (tmp_path / "home").mkdir()
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ELSEWHERE and name != "DEALFLOW_DATABASE_URL"
    }
    env["HOME"] = str(tmp_path / "home")
    env["DEALFLOW_DATA_DIR"] = str(tmp_path / "data")
    return env


def everything_in(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def test_a_report_with_charts_leaves_the_home_folder_empty(tmp_path: Path) -> None:
    env = empty_home_env(tmp_path)
    dealflow("db", "upgrade", env=env)
    report = tmp_path / "report.html"
    dealflow(
        *("report", "--from", "2026-11-23", "--to", "2026-11-29", "--html", str(report)), env=env
    )
    assert "data:image/png;base64," in report.read_text(), "the report has its charts"
    assert everything_in(tmp_path / "home") == []
    assert (tmp_path / "data" / "matplotlib").is_dir()


def chart_module_config_dir(env: dict[str, str]) -> str:
    """Where matplotlib keeps its configuration in a process that imports the charts."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import dealflow.reports.charts, matplotlib; print(matplotlib.get_configdir())",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
    ).stdout.strip()


def test_the_chart_module_alone_keeps_matplotlib_in_the_data_folder(tmp_path: Path) -> None:
    # As in a worker's flow run, which starts without Dealflow's CLI.
    env = empty_home_env(tmp_path)
    assert chart_module_config_dir(env) == str(tmp_path / "data" / "matplotlib")
    assert everything_in(tmp_path / "home") == []


def test_a_users_mplconfigdir_is_kept(tmp_path: Path) -> None:
    env = {**empty_home_env(tmp_path), "MPLCONFIGDIR": str(tmp_path / "mine")}
    assert chart_module_config_dir(env) == str(tmp_path / "mine")


def test_the_stacks_processes_keep_matplotlib_in_its_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers run the report flows: they get the folder from the stack's environment.
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    env = stack_env(StackConfig(data_dir=tmp_path))
    assert env["MPLCONFIGDIR"] == str(tmp_path.resolve() / "matplotlib")
    assert env["PREFECT_HOME"] == str(tmp_path.resolve() / "prefect")
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mine"))
    assert stack_env(StackConfig(data_dir=tmp_path))["MPLCONFIGDIR"] == str(tmp_path / "mine")
