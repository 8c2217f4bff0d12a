"""The warm parent: imports Prefect's engine and Dealflow's flows once, then forks one
process per flow run that a launcher asks for (``python -m dealflow.warm.parent --socket
PATH``, started by ``dealflow worker``).

Each run is its own process, as with Prefect's own command: a crash or a kill ends that run
only. The parent holds no threads and no connections when it forks, and lets each run read
its settings from the environment the worker gave the launcher. When the code changes (a
deploy), the parent refuses the next run (the launcher starts it cold) and exits, and
``dealflow worker`` starts a new one on the new code."""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from dealflow.warm import protocol
from dealflow.warm.fingerprint import code_fingerprint
from dealflow.warm.run_client import connected_run_client

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Asked by the next launcher after a deploy: the supervisor starts a new parent.
EXIT_CODE_CHANGED = 3
# What Prefect's engine imports on its way to running a flow: imported here once.
ENGINE_MODULES = (
    "prefect",
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect._internal.metrics",
    "prefect.deployments.steps",
    "prefect.runner.storage",
    "prefect.input.run_input",
    "prefect.results",
    "prefect.utilities.visualization",  # imported by each task call
)


def main(argv: list[str] | None = None) -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--socket", required=True, type=Path)
    arguments.add_argument(
        "--watch",
        type=Path,
        action="append",
        help="A folder whose change means a deploy (default: DEALFLOW_CODE_DIR, where the "
        "deployments' runs take their code, and this installation's code).",
    )
    options = arguments.parse_args(argv)
    started = time.monotonic()
    preload()
    watched = options.watch or _code_folders()
    fingerprint = code_fingerprint(watched)
    listener = _listen(options.socket)
    print(
        f"warm parent {os.getpid()}: ready in {time.monotonic() - started:.1f} s at {options.socket}",
        file=sys.stderr,
        flush=True,
    )
    serve(listener, watched, fingerprint)


def _code_folders() -> list[Path]:
    code_dir = os.environ.get("DEALFLOW_CODE_DIR")
    return [PROJECT_ROOT, *([Path(code_dir)] if code_dir else [])]


def preload() -> None:
    """Import what every run needs, before any run: Prefect's engine and each flow of
    prefect.yaml with what it imports. Nothing here may start a thread or connect."""
    for module in ENGINE_MODULES:
        importlib.import_module(module)
    for module in flow_modules():
        importlib.import_module(module)
    _prepare_our_code()
    _complete_models()
    _reread_settings()  # the imports may have set some (Prefect's home, its address)
    extra = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if extra:
        raise SystemExit(f"warm parent: importing the flows started threads {extra}")
    gc.collect()
    gc.freeze()  # the runs share these objects' pages instead of copying them


def _prepare_our_code() -> None:
    """What every run of ours would otherwise do first, pure CPU: the ORM's mappers, the
    templates compiled, the translations read, the responsibility matrix parsed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.orm import configure_mappers

    from dealflow.infra.rendering import compile_templates
    from models.matrix import MatrixError, load_matrix
    from models.settings import get_settings

    configure_mappers()
    compile_templates()
    # The database driver, which SQLAlchemy imports on the first connection. A bad
    # address is the runs' to report.
    with contextlib.suppress(Exception):
        make_url(get_settings().resolved_database_url).get_dialect().import_dbapi()
    # Parsed once per text: a run that reads the same matrix finds it parsed. A broken
    # matrix is the runs' to report, where the people who fix it look.
    with contextlib.suppress(MatrixError, ValueError):
        load_matrix(get_settings().matrix_path)


def _complete_models() -> None:
    """Build the validators of the models that defer it to their first use (Prefect's
    API schemas among them), which every run would otherwise build again."""
    from pydantic import BaseModel

    todo: list[type[BaseModel]] = [BaseModel]
    while todo:
        model = todo.pop()
        todo.extend(model.__subclasses__())
        if not model.__pydantic_complete__:
            with contextlib.suppress(Exception):  # a forward reference not defined yet
                model.model_rebuild()


def flow_modules() -> list[str]:
    import yaml

    declared_in = PROJECT_ROOT / "prefect.yaml"
    if not declared_in.exists():  # an installation without the checkout: Prefect only
        return []
    declared = yaml.safe_load(declared_in.read_text())["deployments"]
    return sorted(
        {d["entrypoint"].partition(":")[0].removesuffix(".py").replace("/", ".") for d in declared}
    )


def _listen(path: Path) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a parent that was killed
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)  # the runs get the worker's secrets: only its user may ask
    listener.listen(64)
    return listener


def serve(listener: socket.socket, watched: list[Path], fingerprint: str) -> None:
    supervisor = os.getppid()
    # Ctrl-C in a terminal reaches the whole group: the supervisor stops the parent after
    # its worker, so that runs starting meanwhile still start warm.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        if os.getppid() != supervisor:
            sys.exit("warm parent: the worker beside it is gone")
        _reap_watchers()
        ready, _, _ = select.select([listener], [], [], 1.0)
        if not ready:
            continue
        connection, _ = listener.accept()
        connection.settimeout(10)
        try:
            request, streams = protocol.receive(connection, with_fds=True)
        except OSError as exc:
            print(f"warm parent: a bad request ({exc})", file=sys.stderr, flush=True)
            connection.close()
            continue
        if code_fingerprint(watched) != fingerprint:
            _refuse(connection, streams, "the code changed; a new warm parent is starting")
            listener.close()
            sys.exit(EXIT_CODE_CHANGED)
        if os.fork() == 0:
            listener.close()
            _watch_run(connection, streams, request)
        connection.close()
        for fd in streams:
            os.close(fd)


def _refuse(connection: socket.socket, streams: list[int], reason: str) -> None:
    with contextlib.suppress(OSError):
        protocol.send(connection, {"cold": reason})
    connection.close()
    for fd in streams:
        os.close(fd)


def _reap_watchers() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _watch_run(connection: socket.socket, streams: list[int], request: dict[str, Any]) -> NoReturn:
    """In a forked watcher: fork the run, tell the launcher its pid, and report how it
    ended; a launcher that vanished (killed with its worker) takes the run with it."""
    watcher = os.getpid()
    run = os.fork()
    if run == 0:
        connection.close()
        _die_with(watcher)
        _run_engine(streams, request)
    for fd in streams:
        os.close(fd)
    try:
        connection.settimeout(None)
        protocol.send(connection, {"pid": run})
        ended = os.pidfd_open(run)
        poller = select.poll()
        poller.register(ended, select.POLLIN)
        poller.register(connection, select.POLLIN | select.POLLHUP)
        while True:
            for fd, _event in poller.poll():
                if fd == ended:
                    _, status = os.waitpid(run, 0)
                    protocol.send(connection, {"exitcode": os.waitstatus_to_exitcode(status)})
                    os._exit(0)
                if not connection.recv(1):  # the launcher is gone
                    raise ConnectionError
    except OSError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(run, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(run, 0)
        os._exit(1)


def _die_with(watcher: int) -> None:
    """The run ends when its watcher does: nothing else would tell the worker how it ended,
    and a run the worker counts as crashed must not go on beside the one that recovers it."""
    import ctypes

    pr_set_pdeathsig = 1  # prctl(2)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != watcher:  # it died before the line above
        os._exit(1)


def _run_engine(streams: list[int], request: dict[str, Any]) -> NoReturn:
    """In the forked run: become what ``python -m prefect.engine`` would have been,
    started by the worker with the launcher's streams, folder, environment and arguments."""
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in enumerate(streams):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    _name_process(os.environ.get("PREFECT__FLOW_RUN_ID", ""))
    _reread_settings()
    import runpy

    sys.argv = ["prefect.engine", *request["argv"]]
    # Preloaded for its imports; run afresh as __main__, as `python -m` would.
    sys.modules.pop("prefect.engine", None)
    # Without a flow run to name, Prefect's engine says so at once: no server to wait for.
    server = connected_run_client() if _names_a_flow_run() else contextlib.nullcontext()
    exitcode = 0
    try:
        with server:
            runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        exitcode = _exit_status(exc.code)
    except BaseException:
        import traceback

        traceback.print_exc()
        exitcode = 1
    # Leave as the interpreter would (other threads joined, atexit run), but from here:
    # the frames below belong to the parent's loop, and tearing down every module the
    # parent imported would only cost time.
    threading._shutdown()  # type: ignore[attr-defined]
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(exitcode)


def _names_a_flow_run() -> bool:
    """Whether the arguments (or the environment) name a flow run, as the engine reads them."""
    import uuid

    named = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PREFECT__FLOW_RUN_ID", "")
    try:
        uuid.UUID(named)
    except ValueError:
        return False
    return True


def _name_process(flow_run_id: str) -> None:
    """Name the run's process after its flow run (``run-`` and the id's first 11
    characters), for ``ps`` and ``top``: its command line is the warm parent's."""
    import ctypes

    if not (flow_run_id and sys.platform.startswith("linux")):
        return
    pr_set_name = 15  # prctl(2); the kernel keeps 15 bytes
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(pr_set_name, f"run-{flow_run_id[:11]}".encode(), 0, 0, 0)


def _exit_status(code: object) -> int:
    """As the interpreter turns ``sys.exit(code)`` into a status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _reread_settings() -> None:
    """Settings come from the run's environment, not from the parent's."""
    import prefect.context
    from prefect.logging.configuration import setup_logging

    inherited = prefect.context.get_settings_context().settings
    prefect.context.refresh_global_settings_context()
    if prefect.context.get_settings_context().settings != inherited:
        # Logging is configured from the settings: again only when they differ, as
        # configuring it costs a run more than the rest of this.
        setup_logging(incremental=False)
    settings_module = sys.modules.get("models.settings")
    if settings_module is not None:
        settings_module.get_settings.cache_clear()


if __name__ == "__main__":
    main()
