"""A scheduled flow started from the command line, as a run of its deployment.

Started this way, ``dealflow payments check`` and ``dealflow sla sweep`` show in the
Prefect UI under their deployment, named like the scheduled runs, and run where the
schedule runs them (the stack's runner, or a worker of the ``dealflow`` pool) with the
stack's settings. The command waits for the run and prints what it did: the message of
its final state.

Where the Prefect server has no such deployment (Prefect's temporary server, or one
Dealflow was not deployed to), or with ``--here``, the flow runs in this process, still as
a flow run on that server.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

from dealflow.cli.options import fail
from models.settings import get_settings

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.states import State

# A run nobody picks up within this time has no runner or worker to run it: the command
# cancels it and says so.
PICK_UP_SECONDS = 60.0


def here_option(what: str) -> Any:
    return typer.Option(
        "--here",
        help=f"Run {what} in this process instead of as a run of its deployment on the "
        "stack (it still shows in the Prefect UI, outside the deployment).",
    )


def run_and_report(
    deployment: str,
    flow: Callable[..., Any],
    now: dt.datetime | None,
    here: bool,
    what: str,
) -> str:
    """What the run of ``flow`` at ``now`` did (its final message), run as a run of
    ``deployment`` when the server has that deployment and ``here`` is not asked for,
    else in this process. A run that failed, or that nothing picks up, ends the command
    with a clear error."""
    import httpx

    parameters = {"now": now.isoformat() if now else None}
    try:
        state = None if here else _run_of_deployment(deployment, parameters, what)
        if state is None:
            state = flow(**parameters, return_state=True)
    except httpx.HTTPError as exc:
        raise fail(
            f"{what.capitalize()} did not run: cannot reach the Prefect server ({exc})"
        ) from exc
    if not state.is_completed():
        raise fail(f"{what.capitalize()} ended {state.name}: {state.message or 'no message'}")
    return state.message or ""


def _run_of_deployment(
    deployment: str, parameters: dict[str, Any], what: str, patience: float = PICK_UP_SECONDS
) -> State | None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return None  # Prefect's temporary server: nothing is deployed there
    with get_client(sync_client=True) as client:
        try:
            found = client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            typer.echo(
                f"The Prefect server has no deployment {deployment}: {what} runs in this process.",
                err=True,
            )
            return None
        run = client.create_flow_run_from_deployment(
            found.id,
            parameters=parameters,
            tags=["on-demand"],
        )
        ui = get_settings().prefect_ui_url
        typer.echo(f"Started a run of {deployment}: {ui}/runs/flow-run/{run.id}", err=True)
        return _final_state(client, run, what, patience)


def _final_state(client: Any, run: FlowRun, what: str, patience: float) -> State:
    from prefect.states import Cancelled

    waiting_since = time.monotonic()
    while True:
        state = client.read_flow_run(run.id).state
        if state is not None and state.is_final():
            return state
        if not (state is None or state.is_scheduled() or state.is_pending()):
            waiting_since = time.monotonic()  # picked up: it runs, however long it takes
        elif time.monotonic() - waiting_since > patience:
            # Cancelled, not left scheduled: run again with --here, it would run twice.
            client.set_flow_run_state(
                run.id, Cancelled(message="nothing picked it up; the command gave up"), force=True
            )
            raise fail(
                f"{what.capitalize()}: nothing picked up its run within "
                f"{patience:.0f} s, so it was cancelled. A run needs the stack's "
                "runner (dealflow stack up) or a worker of the dealflow pool; or run it in "
                "this process with --here."
            )
        time.sleep(0.5)
