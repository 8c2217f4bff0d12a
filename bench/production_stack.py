"""The stack the load benchmarks measure: the production path, with databases of its own.

The production path of docs/deployment.md (``dealflow.stack.local.Stack``): Prefect and
Dealflow on PostgreSQL, a process work pool with two ``prefect worker`` processes, the
web service as two uvicorn processes. Each run gets a data folder, free ports and
databases named after its process, all gone again when it ends; the benchmark script
receives the mail itself, so no mail catcher runs.

Prefect and Dealflow read their settings once, when first imported: ``plan_stack``
puts the stack's environment in place before either is, so this module imports them
only inside functions.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.process_trees import Roles
from bench.scratch_databases import create_databases, drop_databases
from bench.script import BenchError, say
from bench.timed_inbox import TimedInbox
from harness.ports import free_port

if TYPE_CHECKING:
    from dealflow.stack.config import StackConfig
    from dealflow.stack.local import Stack

POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


@dataclass(frozen=True)
class BenchPlan:
    """Where this run's stack lives: a data folder, free ports, databases of its own."""

    data_dir: str
    prefect_port: int
    web_port: int
    smtp_port: int
    databases: dict[str, str]  # "dealflow" / "prefect" -> database name
    api_key: str  # for POST /api/deals
    pool_limit: int
    warm: bool = True  # the workers start runs warm (`dealflow worker`), or cold (--cold)


def stack_config(plan: BenchPlan, postgres: str = POSTGRES_SERVER) -> StackConfig:
    """The production path: PostgreSQL, a process work pool with two workers, the web
    service as two processes, and no mail catcher (this process receives the mail)."""
    from dealflow.stack.config import StackConfig

    return StackConfig(
        data_dir=Path(plan.data_dir),
        prefect_port=plan.prefect_port,
        web_port=plan.web_port,
        smtp_port=plan.smtp_port,
        mail_catcher=False,
        workers=2,
        warm=plan.warm,
        web_processes=2,
        pool_limit=plan.pool_limit,
        database_url=f"{postgres}/{plan.databases['dealflow']}",
        prefect_database_url=f"{postgres.replace('+psycopg', '+asyncpg')}/{plan.databases['prefect']}",
        extra_env={
            "DEALFLOW_INTAKE_API_KEYS": json.dumps({"bench": plan.api_key}),
            # Every approval of a benchmark is clicked from this one address.
            "DEALFLOW_LINK_REQUESTS_PER_MINUTE": "1000000",
        },
    )


def plan_stack(prefix: str, pool_limit: int, warm: bool = True) -> BenchPlan:
    """Choose the stack's ports, data folder and database names (``prefix`` and this
    process's id), and put its environment in place for this process: Prefect and
    Dealflow read their settings once, so this comes before either is first used."""
    from dealflow.stack.config import stack_env

    if "prefect" in sys.modules:
        raise BenchError("Prefect was imported before the stack's environment was set")
    tag = f"{prefix}_{os.getpid()}"
    plan = BenchPlan(
        data_dir=tempfile.mkdtemp(prefix=f"dealflow-{prefix.replace('_', '-')}-"),
        prefect_port=free_port(),
        web_port=free_port(),
        smtp_port=free_port(),
        databases={"dealflow": f"{tag}_dealflow", "prefect": f"{tag}_prefect"},
        api_key=secrets.token_urlsafe(24),
        pool_limit=pool_limit,
        warm=warm,
    )
    os.environ.update(stack_env(stack_config(plan)))
    return plan


def database_size(name: str, postgres: str = POSTGRES_SERVER) -> int:
    """Bytes on disk of database ``name`` (``pg_database_size``)."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"{postgres}/postgres")
    try:
        with engine.connect() as connection:
            size = connection.execute(sa.text("SELECT pg_database_size(:n)"), {"n": name})
            return int(size.scalar_one())
    finally:
        engine.dispose()


@contextmanager
def running_stack(plan: BenchPlan, inbox: TimedInbox, keep_data: bool = False) -> Iterator[Stack]:
    """Databases, this process's SMTP server and the stack, all gone again on the way out
    (also on Ctrl-C or an error; the logs' tails are printed on an error)."""
    from aiosmtpd.controller import Controller

    from dealflow.stack.local import Stack

    config = stack_config(plan)
    names = list(plan.databases.values())
    create_databases(POSTGRES_SERVER, names)
    controller = Controller(inbox, hostname=config.host, port=config.smtp_port)
    stack = Stack(config)
    try:
        controller.start()
        began = time.monotonic()
        stack.start()
        say(f"stack up in {time.monotonic() - began:.0f}s (data in {plan.data_dir})")
        yield stack
    except BaseException as exc:
        if not isinstance(exc, KeyboardInterrupt):
            for name in stack.processes:
                print(f"--- {name} log (tail) ---\n{stack.log_tail(name)}", file=sys.stderr)
        raise
    finally:
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        stack.stop()
        controller.stop()
        drop_databases(POSTGRES_SERVER, names)
        if keep_data:
            print(f"data kept in {plan.data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(plan.data_dir, ignore_errors=True)
        signal.signal(signal.SIGINT, interrupt)


def stack_roles(stack: Stack) -> Roles:
    """The process ids whose process trees the memory figures add up, by role."""
    workers = sorted(name for name in stack.processes if name.startswith("worker"))
    return {
        "server": [stack.processes["prefect"].pid],
        "web": [stack.processes["web"].pid],
        "workers": [stack.processes[name].pid for name in workers],
    }


def other_runs_between(start_wall: float, end_wall: float, ours: Sequence[str]) -> dict[str, int]:
    """Runs of the pool's other deployments (the scheduled sweeps and reports) that
    started in the window: they share the workers and the CPU with the measured runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime
    from prefect.client.schemas.sorting import DeploymentSort, FlowRunSort

    window = FlowRunFilter(
        start_time=FlowRunFilterStartTime(
            after_=dt.datetime.fromtimestamp(start_wall, dt.UTC),
            before_=dt.datetime.fromtimestamp(end_wall, dt.UTC),
        )
    )
    counts: dict[str, int] = {}
    with get_client(sync_client=True) as client:
        # Prefect 3.8.8's server refuses a null "sort" (422): every query names one.
        deployments = client.read_deployments(limit=50, sort=DeploymentSort.NAME_ASC)
        names = {d.id: d.name for d in deployments}
        offset = 0
        while True:
            runs = client.read_flow_runs(
                flow_run_filter=window, sort=FlowRunSort.ID_DESC, limit=200, offset=offset
            )
            for run in runs:
                name = names.get(run.deployment_id) if run.deployment_id else None
                if name is not None and name not in ours:
                    counts[name] = counts.get(name, 0) + 1
            if len(runs) < 200:
                return counts
            offset += 200
