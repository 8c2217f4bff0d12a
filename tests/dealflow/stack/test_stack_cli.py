"""`dealflow stack up` as a user runs it: refuses busy ports, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.ports import free_port
from models.settings import PROJECT_ROOT
from tests.conftest import STACK_ON_POSTGRES
from tests.faults import children_of


def stack_up(data_dir: Path, *ports: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dealflow", "stack", "up", "--data-dir", str(data_dir), *ports],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def free_ports() -> list[str]:
    return [
        *("--prefect-port", str(free_port())),
        *("--web-port", str(free_port())),
        *("--smtp-port", str(free_port())),
        *("--inbox-port", str(free_port())),
    ]


def test_a_busy_port_is_refused_with_the_option_to_move_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = free_ports()
        ports[3] = str(taken.getsockname()[1])
        process = stack_up(tmp_path, *ports)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert f"port {ports[3]} for the web service is in use" in output
    assert "--web-port" in output


@pytest.mark.stack
@pytest.mark.skipif(STACK_ON_POSTGRES, reason="the same on either database: run once")
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_every_way_of_ending_the_stack_stops_all_its_processes_in_seconds(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """A closed terminal (SIGHUP), a plain kill (SIGTERM) and Ctrl-C (SIGINT) each stop
    the Prefect server, the runner, the web service and the mail catcher, with their
    own children: nothing is left holding the ports for the next `make demo`."""
    process = stack_up(tmp_path, *free_ports())
    assert process.stdout is not None
    deadline = time.monotonic() + 180
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if "Press Ctrl-C to stop" in line or not line:
            break
    assert "Dealflow is running" in "".join(lines), "".join(lines)
    below = set(children_of(process.pid))
    assert len(below) >= 4, "prefect server, runner, web service, mail catcher"

    os.kill(process.pid, sig)
    # Seconds, not the quarter of a minute the runner used to hang on SIGTERM.
    assert process.wait(timeout=10) == 0, process.stdout.read()
    time.sleep(0.5)
    assert [pid for pid in below if Path(f"/proc/{pid}").exists()] == []
