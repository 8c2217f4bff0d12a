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

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dealflow.stack.deploy import scheduled_deployments
from models.settings import PROJECT_ROOT

WORK_POOL = "dealflow"  # as named in prefect.yaml
# The last line of a logged traceback: "sqlalchemy.exc.InvalidRequestError: Can't ..."
_TIMING = re.compile(r"\S?\s*\[\s*[\d.]+\s*m?s\]\s*")  # "↩ [  410ms] ": varies per line
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b.*:")


class StackError(RuntimeError):
    pass


@dataclass
class StackConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    prefect_port: int = 4200
    web_port: int = 8000
    smtp_port: int = 1025
    inbox_port: int = 8025
    mail_catcher: bool = True
    runner_poll_seconds: int = 1
    runner_limit: int = 10
    workers: int = 0  # 0: one `serve` runner; more: a process work pool and its workers
    pool_limit: int = 10  # flow runs at once across the work pool's workers
    worker_poll_seconds: int = 1
    web_processes: int = 1
    database_url: str = ""
    prefect_database_url: str = ""
    # "user:password": the Prefect API answers only requests that carry it (HTTP Basic),
    # and every process of the stack sends it (docs/deployment.md).
    prefect_auth: str = ""
    # How long the scheduler may take to give every scheduled deployment its first runs.
    schedule_patience_seconds: float = 60.0
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def prefect_api_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}/api"

    @property
    def web_url(self) -> str:
        return f"http://{self.host}:{self.web_port}"

    @property
    def inbox_url(self) -> str:
        return f"http://{self.host}:{self.inbox_port}"


def prefect_env(config: StackConfig) -> dict[str, str]:
    """Prefect settings for every process of the stack: its home stays in the data folder."""
    env = {
        "PREFECT_HOME": str(config.data_dir.resolve() / "prefect"),
        "PREFECT_API_URL": config.prefect_api_url,
        "PREFECT_SERVER_API_HOST": config.host,
        "PREFECT_SERVER_API_PORT": str(config.prefect_port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": str(config.runner_poll_seconds),
        "PREFECT_WORKER_QUERY_SECONDS": str(config.worker_poll_seconds),
        "PREFECT_UI_URL": config.prefect_api_url.removesuffix("/api"),
        # Every 30 s (Prefect's least) instead of 180: a run whose process was lost is
        # told from a live one sooner (tasks/recovery.py).
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    }
    if config.prefect_database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = config.prefect_database_url
    if config.prefect_auth:
        env["PREFECT_SERVER_API_AUTH_STRING"] = config.prefect_auth
        env["PREFECT_API_AUTH_STRING"] = config.prefect_auth
    return env


def stack_env(config: StackConfig) -> dict[str, str]:
    data = config.data_dir.resolve()
    env = {
        **prefect_env(config),
        "DEALFLOW_DATA_DIR": str(data),
        "DEALFLOW_SMTP_HOST": config.host,
        "DEALFLOW_SMTP_PORT": str(config.smtp_port),
        "DEALFLOW_PUBLIC_BASE_URL": config.web_url,
        "DEALFLOW_PREFECT_API_URL": config.prefect_api_url,
        # Where workers find the flow code (the pull step of prefect.yaml).
        "DEALFLOW_CODE_DIR": str(PROJECT_ROOT),
        **config.extra_env,
    }
    if config.database_url:
        env["DEALFLOW_DATABASE_URL"] = config.database_url
    return env


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

    def _wait_deployment(self, timeout: float) -> None:
        deployment = self.env.get("DEALFLOW_DEPLOYMENT", "deal-handoff/deal-handoff")
        deadline = time.monotonic() + timeout
        with self.api() as api:
            while time.monotonic() < deadline:
                for name in self._flow_runners():
                    if self.processes[name].poll() is not None:
                        raise StackError(f"the {name} exited:\n{self.log_tail(name)}")
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
                waiting = expected - self._deployments_with_upcoming_runs(api)
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

    def _deployments_with_upcoming_runs(self, api: httpx.Client) -> set[str]:
        response = api.post("deployments/filter", json={"limit": 200})
        if response.status_code != 200:
            return set()
        names = {d["id"]: d["name"] for d in response.json()}
        runs = api.post(
            "flow_runs/filter",
            json={
                "flow_runs": {
                    "deployment_id": {"any_": list(names)},
                    "state": {"type": {"any_": ["SCHEDULED"]}},
                },
                "limit": 200,
            },
        )
        if runs.status_code != 200:
            return set()
        return {names[run["deployment_id"]] for run in runs.json() if run["deployment_id"] in names}

    def server_errors(self, most: int = 6) -> str:
        """The Prefect server's logged errors, each once: which service logged it (the
        ``| ERROR | <logger> - ...`` line) and the exception that ended its traceback."""
        path = self.logs / "prefect.log"
        if not path.exists():
            return ""
        found: dict[str, None] = {}
        for line in path.read_text(errors="replace").splitlines():
            if "| ERROR" in line:
                found[_TIMING.sub("", line.split("| ERROR", 1)[1]).strip(" |")] = None
            elif _EXCEPTION_LINE.match(line) is not None:
                found[line.strip()] = None
        return "\n".join(list(found)[-most:])

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
                f"worker-{number}",
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "worker",
                    "start",
                    "--pool",
                    WORK_POOL,
                    "--name",
                    f"dealflow-worker-{number}",
                ],
            )

    def _wait_workers(self, timeout: float, since: float = 0.0, only: str | None = None) -> None:
        """Until every worker (or the ``only`` one) has sent the Prefect server a heartbeat
        after ``since`` (seconds since the epoch)."""
        url = f"work_pools/{WORK_POOL}/workers/filter"
        expected = {f"dealflow-worker-{n}" for n in range(1, self.config.workers + 1)}
        if only is not None:
            # The others beat every 30 s: waiting for them would only add to a restart.
            expected = {f"dealflow-{only}"}
        deadline = time.monotonic() + timeout
        online: set[str] = set()
        while time.monotonic() < deadline:
            for name in self._flow_runners():
                if self.processes[name].poll() is not None:
                    raise StackError(f"the {name} exited:\n{self.log_tail(name)}")
            with self.api() as api:
                response = api.post(url, json={"limit": 50})
            if response.status_code == 200:
                online = {
                    w["name"]
                    for w in response.json()
                    if w.get("status") == "ONLINE"
                    and dt.datetime.fromisoformat(w["last_heartbeat_time"]).timestamp() > since
                }
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
        python = sys.executable
        self._check_ports_free()
        try:
            subprocess.run(
                [python, "-m", "dealflow", "db", "upgrade"],
                cwd=PROJECT_ROOT,
                env=self.env,
                check=True,
                capture_output=True,
            )
        except subprocess.CalledProcessError as exc:
            raise StackError(
                f"database migration failed:\n{exc.stderr.decode(errors='replace')}"
            ) from exc
        if self.config.mail_catcher:
            self._spawn(
                "mail",
                [
                    python,
                    "-m",
                    "dealflow",
                    "mailcatcher",
                    "--smtp-port",
                    str(self.config.smtp_port),
                    "--http-port",
                    str(self.config.inbox_port),
                ],
            )
        self._spawn(
            "prefect",
            [
                python,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                self.config.host,
                "--port",
                str(self.config.prefect_port),
            ],
        )
        self._spawn(
            "web",
            [
                python,
                "-m",
                "uvicorn",
                "web.app:app",
                "--host",
                self.config.host,
                "--port",
                str(self.config.web_port),
                "--log-level",
                "warning",
                "--no-access-log",  # approval links carry their token in the path
                "--workers",
                str(self.config.web_processes),
            ],
        )
        try:
            self._wait_http("prefect", f"{self.config.prefect_api_url}/health", 180)
            if self.config.workers:
                self._start_work_pool()
            else:
                self._spawn(
                    "runner",
                    [python, "-m", "dealflow", "runner", "--limit", str(self.config.runner_limit)],
                )
            self._wait_http("web", f"{self.config.web_url}/healthz", 60)
            if self.config.mail_catcher:
                self._wait_http("mail", f"{self.config.inbox_url}/api/messages", 30)
            self._wait_deployment(120)
            if self.config.workers:
                self._wait_workers(120)
            self._wait_schedules(self.config.schedule_patience_seconds)
        except BaseException:
            self.stop()
            raise

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
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
