"""The local stack: a Prefect server, the runner of our deployments, the web service and a
mail catcher, each a child process with its log under the data folder.

``make demo`` runs it for a person; the end-to-end tests start the same stack on free
ports with their own SMTP receiver, so that what is tested is what a user runs.

With ``workers`` set, the stack takes the production path of docs/deployment.md instead
of ``serve``: a process work pool, the deployments of prefect.yaml registered with
``prefect deploy --all``, that many ``prefect worker`` processes, and the web service
as ``web_processes`` uvicorn processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from dealflow.stack import command_lines, prefect_server
from dealflow.stack.config import StackConfig, stack_env
from dealflow.stack.deploy import scheduled_deployments
from models.settings import PROJECT_ROOT

WORK_POOL = "dealflow"  # as named in prefect.yaml


class StackError(RuntimeError):
    pass


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.env = {**os.environ, **stack_env(config)}
        self.logs = config.data_dir.resolve() / "logs"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, list[str]] = {}
        self.warnings: list[str] = []  # what a person starting the stack should know

    def api(self) -> httpx.Client:
        """A client of the stack's Prefect API, with its credentials if it has any."""
        user, _, password = self.config.prefect_auth.partition(":")
        return httpx.Client(
            base_url=self.config.prefect_api_url + "/",
            auth=(user, password) if self.config.prefect_auth else None,
            timeout=10,
        )

    def _spawn(self, name: str, args: list[str], mode: str = "wb") -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open(mode)  # "wb": this start's log only
        self.commands[name] = args
        self.processes[name] = subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _wait_http(self, name: str, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise StackError(
                    f"{name} exited with code {process.returncode}:\n{self.log_tail(name)}"
                )
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise StackError(
            f"{name} did not answer at {url} within {timeout:.0f}s:\n{self.log_tail(name)}"
        )

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    def _flow_runners(self) -> list[str]:
        """The processes that run flows: the runner, or the work pool's workers."""
        return [name for name in self.processes if name == "runner" or name.startswith("worker")]

    def _check_flow_runners(self) -> None:
        """Stop waiting when the runner or a worker has exited."""
        for name in self._flow_runners():
            if self.processes[name].poll() is not None:
                raise StackError(f"the {name} exited:\n{self.log_tail(name)}")

    def _wait_deployment(self, timeout: float) -> None:
        deployment = self.env.get("DEALFLOW_DEPLOYMENT", "deal-handoff/deal-handoff")
        deadline = time.monotonic() + timeout
        with self.api() as api:
            while time.monotonic() < deadline:
                self._check_flow_runners()
                if api.get(f"deployments/name/{deployment}").status_code == 200:
                    return
                time.sleep(0.5)
        raise StackError(f"deployment {deployment} was not registered:\n{self.log_tail('runner')}")

    def _wait_schedules(self, timeout: float) -> None:
        """Until every scheduled deployment of prefect.yaml has an upcoming run: a stack
        whose scheduler fails (a broken dependency, say) must not say it is running."""
        expected = set(scheduled_deployments())
        deadline = time.monotonic() + timeout
        waiting = expected
        with self.api() as api:
            while time.monotonic() < deadline:
                waiting = expected - prefect_server.deployments_with_upcoming_runs(api)
                if not waiting:
                    break
                time.sleep(1)
        errors = self.server_errors()
        if waiting:
            raise StackError(
                f"Prefect's scheduler created no runs within {timeout:.0f}s for "
                f"{', '.join(sorted(waiting))}: scheduled work (reminders, payment checks, "
                "reports) would never run."
                + (f" The Prefect server logged:\n{errors}" if errors else "")
            )
        if errors:
            self.warnings.append(f"the Prefect server logged errors while starting:\n{errors}")

    def server_errors(self, most: int = 6) -> str:
        """The Prefect server's logged errors, each once: which service logged it and the
        exception that ended its traceback."""
        return prefect_server.logged_errors(self.logs / "prefect.log", most)

    def _prefect(self, *args: str) -> None:
        """Run a Prefect CLI command as an operator would, from the project folder."""
        self._command("prefect", "--no-prompt", *args)

    def _dealflow(self, *args: str) -> None:
        self._command("dealflow", *args)

    def _command(self, module: str, *args: str) -> None:
        try:
            subprocess.run(
                [sys.executable, "-m", module, *args],
                cwd=PROJECT_ROOT,
                env=self.env,
                check=True,
                capture_output=True,
                timeout=300,
            )
        except subprocess.CalledProcessError as exc:
            output = (exc.stdout + exc.stderr).decode(errors="replace")
            shown = " ".join(a for a in args if a != "--no-prompt")
            raise StackError(f"`{module} {shown}` failed:\n{output}") from exc

    def _start_work_pool(self) -> None:
        """The production path: a process work pool, prefect.yaml's deployments, workers."""
        self._prefect("work-pool", "create", WORK_POOL, "--type", "process", "--overwrite")
        # The cap is the pool's, not each worker's: a worker started with --limit stops
        # with "this borrower is already holding one of this CapacityLimiter's tokens"
        # when a run it started suspends and is resumed before it let go of the run.
        self._prefect("work-pool", "set-concurrency-limit", WORK_POOL, str(self.config.pool_limit))
        self._dealflow("deploy")
        for number in range(1, self.config.workers + 1):
            self._spawn(
                f"worker-{number}", command_lines.worker(number, WORK_POOL, self.config.warm)
            )

    def _wait_workers(self, timeout: float, since: float = 0.0, only: str | None = None) -> None:
        """Until every worker (or the ``only`` one) has sent the Prefect server a heartbeat
        after ``since`` (seconds since the epoch)."""
        expected = {f"dealflow-worker-{n}" for n in range(1, self.config.workers + 1)}
        if only is not None:
            # The others beat every 30 s: waiting for them would only add to a restart.
            expected = {f"dealflow-{only}"}
        deadline = time.monotonic() + timeout
        online: set[str] = set()
        while time.monotonic() < deadline:
            self._check_flow_runners()
            with self.api() as api:
                answer = prefect_server.workers_online(api, WORK_POOL, since)
            if answer is not None:
                online = answer
                if expected <= online:
                    return
            time.sleep(0.5)
        raise StackError(
            f"workers {sorted(expected - online)} did not come online:\n{self.log_tail(only or 'worker-1')}"
        )

    def _check_ports_free(self) -> None:
        ports = {
            "Prefect server": ("--prefect-port", self.config.prefect_port),
            "web service": ("--web-port", self.config.web_port),
        }
        if self.config.mail_catcher:
            ports["mail catcher SMTP"] = ("--smtp-port", self.config.smtp_port)
            ports["mail inbox"] = ("--inbox-port", self.config.inbox_port)
        for what, (option, port) in ports.items():
            with socket.socket() as probe:
                # As the servers do: a port left in TIME_WAIT by a stopped stack is free.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((self.config.host, port))
                except OSError:
                    raise StackError(
                        f"port {port} for the {what} is in use (another Dealflow stack?): "
                        f"stop what holds it, or move it with {option}"
                    ) from None

    def start(self) -> None:
        self._check_ports_free()
        self._migrate()
        if self.config.mail_catcher:
            self._spawn("mail", command_lines.mail_catcher(self.config))
        self._spawn("prefect", command_lines.prefect_server(self.config))
        self._spawn("web", command_lines.web_service(self.config))
        try:
            self._wait_http("prefect", f"{self.config.prefect_api_url}/health", 180)
            if self.config.workers:
                self._start_work_pool()
            else:
                self._spawn("runner", command_lines.runner(self.config))
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _migrate(self) -> None:
        try:
            subprocess.run(
                [sys.executable, "-m", "dealflow", "db", "upgrade"],
                cwd=PROJECT_ROOT,
                env=self.env,
                check=True,
                capture_output=True,
            )
        except subprocess.CalledProcessError as exc:
            raise StackError(
                f"database migration failed:\n{exc.stderr.decode(errors='replace')}"
            ) from exc

    def _wait_ready(self) -> None:
        """Until every service answers, the deployments are registered, the workers are
        online and the scheduler has given every schedule its next run."""
        self._wait_http("web", f"{self.config.web_url}/healthz", 60)
        if self.config.mail_catcher:
            self._wait_http("mail", f"{self.config.inbox_url}/api/messages", 30)
        self._wait_deployment(120)
        if self.config.workers:
            self._wait_workers(120)
        self._wait_schedules(self.config.schedule_patience_seconds)

    def halt(self, name: str, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop one process of the stack (and its children), e.g. a worker to restart it."""
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def restart(self, name: str) -> None:
        """Start a halted process again with the same command; its log goes on."""
        if self.processes[name].poll() is None:
            raise StackError(f"{name} is still running")
        started = time.time()
        self._spawn(name, self.commands[name], mode="ab")
        if name == "prefect":
            self._wait_http("prefect", f"{self.config.prefect_api_url}/health", 180)
        if name.startswith("worker"):
            self._wait_workers(120, since=started, only=name)

    def stop(self) -> None:
        """Stop every process of the stack, each with its own children, in a few
        seconds: first what runs flows (Ctrl-C, while the Prefect server it reports to is
        still there), then the rest. Whatever outlives ``STOP_GRACE_SECONDS`` is killed."""
        runs_flows = [name for name in self.processes if _runs_flows(name)]
        others = [name for name in self.processes if not _runs_flows(name)]
        self._stop_group(runs_flows, signal.SIGINT)
        self._stop_group(others, signal.SIGTERM)
        self.processes.clear()

    def _stop_group(self, names: list[str], sig: signal.Signals) -> None:
        for name in names:
            if self.processes[name].poll() is None:
                _signal_group(self.processes[name].pid, sig)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for name in names:
            process = self.processes[name]
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# Long enough for a process to finish what it is doing; a person stopping the stack, or
# a terminal closing, should not wait longer.
STOP_GRACE_SECONDS = 5.0


def _runs_flows(name: str) -> bool:
    # Prefect's runner and workers shut down cleanly on Ctrl-C while their server is up;
    # on SIGTERM, or with the server gone, the runner hung until it was killed.
    return name == "runner" or name.startswith("worker")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.killpg(pid, sig)
