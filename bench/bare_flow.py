"""The baseline of bench/approval_latency.py: a Prefect flow that only suspends twice.

Same Prefect calls as the deal flow at its gates (suspend with an input model and a key,
resumed by ``resume_flow_run``), with no work in between. It imports nothing of
Dealflow, so its run processes start as fast as Prefect allows.

Run as a script from the project root, ``deploy POOL NAME`` registers the deployment
``bare-gates/NAME`` on the process work pool ``POOL`` with no command, so that a plain
``prefect worker start --pool POOL`` runs it on Prefect's stock process path; ``deploy
POOL NAME COMMAND`` gives it a command (the warm launcher, for a ``dealflow worker``). The
worker finds the flow again by its entrypoint ``bench/bare_flow.py:bare_gates`` in this
checkout.
"""

from __future__ import annotations

import sys

from prefect import flow, suspend_flow_run
from pydantic import BaseModel

FLOW_NAME = "bare-gates"
DEPLOYMENT = f"{FLOW_NAME}/{FLOW_NAME}"


class Go(BaseModel):
    approved: bool = True


@flow(name=FLOW_NAME, persist_result=False)
def bare_gates() -> str:
    suspend_flow_run(wait_for_input=Go, key="gate-a")
    suspend_flow_run(wait_for_input=Go, key="gate-b")
    return "done"


ENTRYPOINT = "bench/bare_flow.py:bare_gates"


def deploy(pool: str, name: str, command: str | None) -> None:
    """Register deployment ``name`` on ``pool``, its runs started with ``command`` (the
    pool's, Prefect's own engine, when None)."""
    from pathlib import Path

    checkout = str(Path(__file__).resolve().parent.parent)
    source = bare_gates.from_source(checkout, ENTRYPOINT)
    source.deploy(  # type: ignore[union-attr]
        name=name,
        work_pool_name=pool,
        job_variables={"command": command} if command else None,
        print_next_steps=False,
    )


if __name__ == "__main__":
    if sys.argv[1:2] != ["deploy"] or len(sys.argv) not in (4, 5):
        sys.exit("usage: bench/bare_flow.py deploy POOL NAME [COMMAND]")
    deploy(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) == 5 else None)
