"""The warm parent and the launcher, as a worker uses them: a launcher started with the
worker's environment gets its run forked from the warm parent, writes to the launcher's
streams, ends as the run ended, and passes the worker's signals on. Prefect's API is a
port that accepts connections and never answers, so that a run waits where a real one
loads its flow run, for as long as a test needs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dealflow.warm.launch import SOCKET_VARIABLE
from dealflow.warm.parent import EXIT_CODE_CHANGED
from models.settings import PROJECT_ROOT

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="Linux only")


@pytest.fixture
def silent_api() -> Iterator[str]:
    """A Prefect API URL that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(50)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"


class WarmParent:
    def __init__(self, folder: Path) -> None:
        self.socket = folder / "parent.sock"
        self.watched = folder / "code"
        self.watched.mkdir()
        (self.watched / "prefect.yaml").write_text("deployments: []\n")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dealflow.warm.parent",
                "--socket",
                str(self.socket),
                "--watch",
                str(self.watched),
            ],
            cwd=PROJECT_ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not self.socket.exists():
            assert self.process.poll() is None, self.process.communicate()[1]
            assert time.monotonic() < deadline, "the warm parent did not listen"
            time.sleep(0.1)

    def runs(self) -> list[int]:
        """The processes of runs forked from this parent: its children's children."""
        return [
            grandchild for child in children(self.process.pid) for grandchild in children(child)
        ]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


@pytest.fixture
def warm_parent(tmp_path: Path) -> Iterator[WarmParent]:
    parent = WarmParent(tmp_path)
    yield parent
    parent.stop()


@pytest.fixture
def launch(tmp_path: Path, silent_api: str) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(socket_path: Path | None, flow_run_id: str = "") -> subprocess.Popen[str]:
        env = {
            **os.environ,
            "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_API_URL": silent_api,
            "PREFECT__FLOW_RUN_ID": flow_run_id or "3f9a479d-cffc-42ac-a020-b8f49650550d",
        }
        env.pop(SOCKET_VARIABLE, None)
        if socket_path is not None:
            env[SOCKET_VARIABLE] = str(socket_path)
        process = subprocess.Popen(
            [sys.executable, "-m", "dealflow.warm.launch"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition: Callable[[], object], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def waiting_run(parent: WarmParent, launcher: subprocess.Popen[str]) -> int:
    """The forked run of ``launcher``, once it waits on the silent API."""
    wait_for(lambda: len(parent.runs()) == 1)
    assert launcher.poll() is None
    return parent.runs()[0]


def test_a_run_forked_warm_writes_to_the_launchers_streams_and_exits_as_it_did(
    warm_parent: WarmParent, launch: Callable[..., subprocess.Popen[str]]
) -> None:
    launcher = launch(warm_parent.socket, flow_run_id="not-a-flow-run")
    _, errors = launcher.communicate(timeout=60)
    assert launcher.returncode == 1
    assert "Invalid flow run id" in errors
    assert "cold" not in errors


def test_a_warm_run_is_a_process_of_its_own_and_the_launcher_stands_in_for_it(
    warm_parent: WarmParent, launch: Callable[..., subprocess.Popen[str]]
) -> None:
    launcher = launch(warm_parent.socket)
    run = waiting_run(warm_parent, launcher)
    assert run != launcher.pid
    assert b"dealflow.warm.launch" in Path(f"/proc/{launcher.pid}/cmdline").read_bytes()
    # `ps` names it after its flow run.
    assert Path(f"/proc/{run}/comm").read_text().strip() == "run-3f9a479d-cf"


def test_the_workers_signal_to_the_launcher_reaches_the_run(
    warm_parent: WarmParent, launch: Callable[..., subprocess.Popen[str]]
) -> None:
    launcher = launch(warm_parent.socket)
    run = waiting_run(warm_parent, launcher)
    launcher.send_signal(signal.SIGTERM)
    launcher.communicate(timeout=30)
    wait_for(lambda: not alive(run))
    assert launcher.returncode != 0


def test_a_killed_launcher_takes_its_run_with_it(
    warm_parent: WarmParent, launch: Callable[..., subprocess.Popen[str]]
) -> None:
    launcher = launch(warm_parent.socket)
    run = waiting_run(warm_parent, launcher)
    launcher.kill()
    wait_for(lambda: not alive(run))
    assert warm_parent.process.poll() is None


def test_a_run_whose_watcher_is_killed_ends_too_and_its_launcher_says_so(
    warm_parent: WarmParent, launch: Callable[..., subprocess.Popen[str]]
) -> None:
    launcher = launch(warm_parent.socket)
    run = waiting_run(warm_parent, launcher)
    (watcher,) = children(warm_parent.process.pid)
    os.kill(watcher, signal.SIGKILL)
    _, errors = launcher.communicate(timeout=30)
    wait_for(lambda: not alive(run))
    assert launcher.returncode == 1
    assert "lost the warm run" in errors


def test_a_killed_run_ends_its_launcher_by_the_same_signal(
    warm_parent: WarmParent, launch: Callable[..., subprocess.Popen[str]]
) -> None:
    launcher = launch(warm_parent.socket)
    run = waiting_run(warm_parent, launcher)
    os.kill(run, signal.SIGKILL)
    _, errors = launcher.communicate(timeout=30)
    assert launcher.returncode == -signal.SIGKILL, errors


def test_runs_outlive_a_killed_warm_parent_and_later_runs_start_cold(
    warm_parent: WarmParent, launch: Callable[..., subprocess.Popen[str]]
) -> None:
    launcher = launch(warm_parent.socket)
    run = waiting_run(warm_parent, launcher)
    warm_parent.process.kill()
    warm_parent.process.wait()
    time.sleep(0.5)
    assert alive(run) and launcher.poll() is None

    later = launch(warm_parent.socket, flow_run_id="not-a-flow-run")
    _, errors = later.communicate(timeout=60)
    assert "starting this run cold (no warm parent at" in errors
    assert "Invalid flow run id" in errors  # Prefect's own engine ran it


def test_after_a_deploy_the_next_run_starts_cold_and_the_parent_exits_for_a_new_one(
    warm_parent: WarmParent, launch: Callable[..., subprocess.Popen[str]]
) -> None:
    (warm_parent.watched / "prefect.yaml").write_text("deployments: []  # a new release\n")
    launcher = launch(warm_parent.socket, flow_run_id="not-a-flow-run")
    _, errors = launcher.communicate(timeout=60)
    assert "starting this run cold (the code changed" in errors
    assert "Invalid flow run id" in errors
    assert warm_parent.process.wait(timeout=10) == EXIT_CODE_CHANGED


def test_without_a_warm_parent_the_launcher_is_prefects_own_engine(
    launch: Callable[..., subprocess.Popen[str]],
) -> None:
    launcher = launch(None, flow_run_id="not-a-flow-run")
    _, errors = launcher.communicate(timeout=60)
    assert launcher.returncode == 1
    assert "Invalid flow run id" in errors
    assert "cold" not in errors  # warm execution is off: nothing to say
