"""``dealflow worker``: a Prefect worker of the process work pool with a warm parent beside
it. The worker runs each flow run with the pool's command, ``python -m
dealflow.warm.launch``, which asks the warm parent to fork it. The Prefect worker runs in
this process (dealflow/warm/prompt.py: it also takes a run as soon as it is scheduled),
and takes signals as ``prefect worker start`` does; a thread keeps
the warm parent alive (a new one after a deploy or a crash), and the warm parent ends
when this process does."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from dealflow.warm.launch import SOCKET_VARIABLE
from dealflow.warm.parent import EXIT_CODE_CHANGED

# A warm parent that keeps failing is started again at most this often; runs start cold
# meanwhile.
RESTART_AT_MOST_EVERY_SECONDS = 30.0


def run_worker(pool: str, name: str | None, warm: bool = True) -> None:
    """Run a Prefect process worker of ``pool`` in this process until it is stopped."""
    # The pool's command names `python`: this installation's, wherever the worker runs.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    os.environ.pop(SOCKET_VARIABLE, None)
    parent = None
    if warm:
        socket_path = Path(tempfile.mkdtemp(prefix="dealflow-warm-")) / "parent.sock"
        os.environ[SOCKET_VARIABLE] = str(socket_path)
        parent = WarmParent(socket_path, dict(os.environ))
        threading.Thread(target=parent.keep_alive, name="warm-parent", daemon=True).start()
    from dealflow.warm.prompt import serve

    try:
        serve(pool, name)
    finally:
        if parent is not None:
            parent.stop()


class WarmParent:
    def __init__(self, socket_path: Path, env: dict[str, str]) -> None:
        self.socket_path = socket_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def keep_alive(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            with self.lock:
                if self.stopping.is_set():
                    return
                self.process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "dealflow.warm.parent",
                        "--socket",
                        str(self.socket_path),
                    ],
                    env=self.env,
                )
            code = self.process.wait()
            if code == EXIT_CODE_CHANGED or self.stopping.is_set():
                continue
            print(
                f"dealflow worker: the warm parent exited with code {code}; runs start cold "
                "until another is ready",
                file=sys.stderr,
                flush=True,
            )
            self.stopping.wait(
                max(0.0, RESTART_AT_MOST_EVERY_SECONDS - (time.monotonic() - started))
            )

    def stop(self) -> None:
        """With the worker: runs already forked go on (the worker's stop ends them)."""
        with self.lock:
            self.stopping.set()
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
        with contextlib.suppress(OSError):
            self.socket_path.unlink()
            self.socket_path.parent.rmdir()
