"""A run forked while the Prefect server restarts waits for it, and its client then rides
out the next restart, where Prefect's own first call would have crashed the run."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import httpx
import pytest

from dealflow.warm.run_client import connected_run_client

pytestmark = pytest.mark.stack


def _restart_later(stack: Any, delay: float) -> threading.Thread:
    def restart() -> None:
        time.sleep(delay)
        stack.restart("prefect")

    thread = threading.Thread(target=restart)
    thread.start()
    return thread


def test_the_run_client_waits_for_the_server_and_then_rides_out_a_restart(
    stack: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    from prefect.client.orchestration import get_client

    stack.halt("prefect", signal.SIGKILL)
    restarting = _restart_later(stack, 2.0)
    try:
        with pytest.raises(httpx.ConnectError), get_client(sync_client=True) as fresh:
            fresh.hello()  # what Prefect's engine would meet first: no retry
        with connected_run_client(patience=180):
            restarting.join()
            assert "this run waits up to 180 s" in capfd.readouterr().err
            client = get_client(sync_client=True)  # as the engine asks for it
            stack.halt("prefect", signal.SIGKILL)
            restarting = _restart_later(stack, 1.0)
            assert client.read_flow_runs(limit=1) is not None, "retried until the server was back"
            restarting.join()
    finally:
        restarting.join()
        if stack.processes["prefect"].poll() is not None:
            stack.restart("prefect")
