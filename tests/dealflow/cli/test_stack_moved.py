"""`dealflow stack up` with its ports moved: the `export` line it prints points a CLI in
another shell at this stack, its mail catcher and its web service included, so the mail
that CLI sends lands in this stack's inbox with links to this stack's pages."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dealflow.cli import stack as stack_cli
from dealflow.cli.main import app
from dealflow.stack.config import StackConfig, stack_env
from dealflow.stack.local import Stack
from harness.ports import free_port


def started(monkeypatch: pytest.MonkeyPatch, *options: str) -> str:
    """What `dealflow stack up OPTIONS` prints once its processes run (here: none)."""
    monkeypatch.setattr(Stack, "start", lambda self: None)
    monkeypatch.setattr(stack_cli, "_watch", lambda stack, announce: announce())
    monkeypatch.setattr(stack_cli, "_stop_on_signals", lambda: None)
    result = CliRunner().invoke(app, ["stack", "up", *options], prog_name="dealflow")
    assert result.exit_code == 0, result.output
    return result.output


def exported(output: str) -> dict[str, str]:
    [line] = [line for line in output.splitlines() if line.strip().startswith("export ")]
    return dict(word.split("=", 1) for word in shlex.split(line.strip())[1:])


def test_moved_ports_print_every_setting_the_cli_needs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ports = {"prefect": free_port(), "web": free_port(), "smtp": free_port(), "inbox": free_port()}
    output = started(
        monkeypatch,
        *("--data-dir", str(tmp_path)),
        *("--prefect-port", str(ports["prefect"])),
        *("--web-port", str(ports["web"])),
        *("--smtp-port", str(ports["smtp"])),
        *("--inbox-port", str(ports["inbox"])),
    )
    config = StackConfig(
        data_dir=tmp_path,
        prefect_port=ports["prefect"],
        web_port=ports["web"],
        smtp_port=ports["smtp"],
        inbox_port=ports["inbox"],
    )
    env = exported(output)
    assert env["DEALFLOW_SMTP_PORT"] == str(ports["smtp"])
    assert env["DEALFLOW_PUBLIC_BASE_URL"] == f"http://127.0.0.1:{ports['web']}"
    # The CLI in that shell sees what the stack's own processes see.
    processes = stack_env(config)
    assert {name: processes[name] for name in env} == env
    assert set(env) == {
        name for name in processes if name.startswith("DEALFLOW_") and name != "DEALFLOW_CODE_DIR"
    }


def test_only_the_smtp_port_moved_still_prints_the_export_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The Prefect port and the data folder are where this shell's settings say.
    prefect_port = int(os.environ["DEALFLOW_PREFECT_API_URL"].rsplit(":", 1)[1].split("/")[0])
    web_port = int(os.environ["DEALFLOW_PUBLIC_BASE_URL"].rsplit(":", 1)[1])
    smtp_port = free_port()
    output = started(
        monkeypatch,
        *("--data-dir", os.environ["DEALFLOW_DATA_DIR"]),
        *("--prefect-port", str(prefect_port)),
        *("--web-port", str(web_port)),
        *("--smtp-port", str(smtp_port)),
    )
    assert exported(output)["DEALFLOW_SMTP_PORT"] == str(smtp_port)


def test_a_stack_where_the_settings_say_prints_no_export_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefect_port = int(os.environ["DEALFLOW_PREFECT_API_URL"].rsplit(":", 1)[1].split("/")[0])
    web_port = int(os.environ["DEALFLOW_PUBLIC_BASE_URL"].rsplit(":", 1)[1])
    output = started(
        monkeypatch,
        *("--data-dir", os.environ["DEALFLOW_DATA_DIR"]),
        *("--prefect-port", str(prefect_port)),
        *("--web-port", str(web_port)),
        *("--smtp-port", os.environ["DEALFLOW_SMTP_PORT"]),
    )
    assert "export" not in output
    assert "dealflow deal submit examples/acme.json" in output
