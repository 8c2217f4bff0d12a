"""How the local stack is set up: its ports, data folder, databases and process counts
(``StackConfig``), and the environment every process of it runs with."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dealflow.infra.home_folder import library_folders
from models.settings import PROJECT_ROOT


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
    # A process work pool and this many `dealflow worker`s, each starting runs warm (the
    # production path); 0: one `serve` runner instead.
    workers: int = 1
    # The workers start runs from a warm parent; False: `dealflow worker --cold`, every
    # run a fresh interpreter as with `prefect worker start`.
    warm: bool = True
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
    """Prefect settings for every process of the stack: its home stays in the data folder
    (the stack's own, even where PREFECT_HOME is set)."""
    env = {
        "PREFECT_HOME": library_folders(config.data_dir)["PREFECT_HOME"],
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
        # matplotlib's configuration and font cache (the weekly report's charts) in the
        # data folder, not the home folder, unless the user chose a folder for them.
        "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR")
        or library_folders(config.data_dir)["MPLCONFIGDIR"],
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
