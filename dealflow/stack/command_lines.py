"""The command line of each long-running process of the local stack."""

from __future__ import annotations

import sys

from dealflow.stack.config import StackConfig


def mail_catcher(config: StackConfig) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dealflow",
        "mailcatcher",
        "--smtp-port",
        str(config.smtp_port),
        "--http-port",
        str(config.inbox_port),
    ]


def prefect_server(config: StackConfig) -> list[str]:
    return [
        sys.executable,
        "-m",
        "prefect",
        "server",
        "start",
        "--host",
        config.host,
        "--port",
        str(config.prefect_port),
    ]


def web_service(config: StackConfig) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "web.app:app",
        "--host",
        config.host,
        "--port",
        str(config.web_port),
        "--log-level",
        "warning",
        "--no-access-log",  # approval links carry their token in the path
        "--workers",
        str(config.web_processes),
    ]


def runner(config: StackConfig) -> list[str]:
    """The runner that serves the deployments (the stack without a work pool)."""
    return [sys.executable, "-m", "dealflow", "runner", "--limit", str(config.runner_limit)]


def worker(number: int, pool: str, warm: bool = True) -> list[str]:
    """Worker ``number`` of the process work pool ``pool`` (the production path)."""
    return [
        sys.executable,
        "-m",
        "dealflow",
        "worker",
        "--pool",
        pool,
        "--name",
        f"dealflow-worker-{number}",
        *([] if warm else ["--cold"]),
    ]
