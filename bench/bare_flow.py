"""The baseline of bench/approval_latency.py: a Prefect flow that only suspends twice.

Same Prefect calls as the deal flow at its gates (suspend with an input model and a key,
resumed by ``resume_flow_run``), with no work in between. It imports nothing of
Dealflow, so its run processes start as fast as Prefect allows.

Run as a script from the project root it serves the deployment ``bare-gates/bare-gates``
the way ``dealflow runner`` serves ours (same ``serve``, same settings from the
environment); the runner finds the flow again by its entrypoint
``bench/bare_flow.py:bare_gates`` relative to that working directory.
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


def main(limit: int) -> None:
    import inspect

    from prefect import serve

    deployment = bare_gates.to_deployment(name=FLOW_NAME)
    assert not inspect.isawaitable(deployment)
    serve(deployment, limit=limit, print_starting_message=False)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
