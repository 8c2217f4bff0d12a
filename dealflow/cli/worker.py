"""``dealflow worker``: a worker of the process work pool that starts flow runs warm."""

from __future__ import annotations

from typing import Annotated

import typer


def worker(
    pool: Annotated[
        str, typer.Option(help="The process work pool (prefect.yaml: dealflow).")
    ] = "dealflow",
    name: Annotated[str | None, typer.Option(help="The worker's name in the Prefect UI.")] = None,
    cold: Annotated[
        bool,
        typer.Option(
            "--cold",
            help="Start every run in a fresh interpreter, as `prefect worker start` does.",
        ),
    ] = False,
) -> None:
    """Run a Prefect worker whose flow runs start from a warm parent process, forked in a
    fraction of a second instead of importing Prefect and the flows again."""
    from dealflow.warm.supervisor import run_worker

    run_worker(pool, name, warm=not cold)
