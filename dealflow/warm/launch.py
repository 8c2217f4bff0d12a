"""The work pool's command for a flow run: ask the warm parent of this machine to fork the
run, and stand in for it towards the worker; without a warm parent, become Prefect's own
``python -m prefect.engine``.

The worker sees this process as the flow run's: the run writes to its standard streams,
the signals the worker sends it reach the run, and it exits as the run exited (by the same
signal when the run was killed), so a cancelled or killed run ends as it would have.
Standard library only: this is started once per flow run, and must start fast."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys

from dealflow.warm import protocol

SOCKET_VARIABLE = "DEALFLOW_WARM_SOCKET"
# What the worker may send a flow-run process: cancellation, Ctrl-C, shutdown.
PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)


class Cold(Exception):
    """No warm run: the warm parent is not there, or it said no."""


def main() -> None:
    try:
        connection, pid = _ask_for_a_warm_run(os.environ.get(SOCKET_VARIABLE, ""))
    except Cold as reason:
        if str(reason):
            print(f"dealflow: starting this run cold ({reason})", file=sys.stderr)
        _become_prefect_engine()
    _stand_in_for(connection, pid)


def _ask_for_a_warm_run(path: str) -> tuple[socket.socket, int]:
    if not path:
        raise Cold("")  # warm execution is off: say nothing
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
        protocol.send(
            connection,
            {"env": dict(os.environ), "cwd": os.getcwd(), "argv": sys.argv[1:]},
            fds=[0, 1, 2],
        )
        answer, _ = protocol.receive(connection)
    except OSError as exc:
        connection.close()
        raise Cold(f"no warm parent at {path}: {exc.strerror or exc}") from None
    if "pid" not in answer:
        connection.close()
        raise Cold(answer.get("cold", "the warm parent said no"))
    return connection, int(answer["pid"])


def _become_prefect_engine() -> None:
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *sys.argv[1:]])


def _stand_in_for(connection: socket.socket, pid: int) -> None:
    def pass_on(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):  # it ended: its exit is on the way
            os.kill(pid, signum)

    for signum in PASSED_ON:
        signal.signal(signum, pass_on)
    try:
        answer, _ = protocol.receive(connection)
        exitcode = int(answer["exitcode"])
    except (OSError, KeyError, ValueError) as exc:
        print(f"dealflow: lost the warm run {pid}: {exc}", file=sys.stderr)
        sys.exit(1)
    if exitcode < 0:  # killed by a signal: be killed by it too, as the worker expects
        if -exitcode not in (signal.SIGKILL, signal.SIGSTOP):  # those cannot be caught
            signal.signal(-exitcode, signal.SIG_DFL)
        os.kill(os.getpid(), -exitcode)
        exitcode = 128 - exitcode
    sys.exit(exitcode)


if __name__ == "__main__":
    main()
