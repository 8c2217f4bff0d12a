"""A flow run as Prefect reports it, and the processes on this machine that hold it."""

from __future__ import annotations

import time
from pathlib import Path


def run_state(run_id: str) -> tuple[str, str | None, str]:
    """The run's state type, its pause key (None unless paused) and the state's name."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
    assert run.state is not None
    return run.state.type.value, run.state.state_details.pause_key, str(run.state.name)


def wait_for_state(run_id: str, state: str, timeout: float = 90, key: str | None = None) -> None:
    """Until the run is in ``state`` (a state type: "PAUSED", "COMPLETED", ...), paused
    under ``key`` when given; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    seen: tuple[str, str | None, str] = ("", None, "")
    while time.monotonic() < deadline:
        seen = run_state(run_id)
        if seen[0] == state and (key is None or seen[1] == key):
            return
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} is {seen}, expected {state} {key or ''}")


def processes_running(run_id: str) -> list[int]:
    """Process ids on this machine whose environment names the flow run."""
    needle = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def wait_until_no_process(run_id: str, timeout: float = 30) -> None:
    """A suspended run's process exits shortly after the state changes; then none holds it."""
    deadline = time.monotonic() + timeout
    while processes_running(run_id):
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still holds processes {processes_running(run_id)}")
        time.sleep(0.2)
