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


def children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state_and_parent = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(state_and_parent[1]) == pid:
            found.add(int(stat.parent.name))
    return found


@pytest.mark.stack
def test_sigterm_stops_every_process_of_the_stack(tmp_path: Path) -> None:
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
    children = children_of(process.pid)
    assert len(children) >= 4, "prefect server, runner, web service, mail catcher"

    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    time.sleep(0.5)
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []
