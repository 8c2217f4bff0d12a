"""A flow that only completes, for tests of how a worker starts runs: unlike Dealflow's
own flows it reads nothing from the shared test stack's database."""

from __future__ import annotations

from prefect import flow


@flow(name="quick-check")
def quick_check() -> str:
    return "done"
