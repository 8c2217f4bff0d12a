"""Which Prefect server Dealflow's own processes talk to."""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from uuid import UUID

from pydantic import BaseModel

from dealflow.infra.answer_proof import proven_payload
from dealflow.infra.home_folder import keep_out_of_home
from models.keys import waits_for
from models.settings import get_settings

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient


def use_configured_prefect_server() -> None:
    """Point Prefect at ``DEALFLOW_PREFECT_API_URL`` unless ``PREFECT_API_URL`` is set.

    Prefect reads its settings when first imported: without this, a process started
    from a plain shell would talk to a throwaway in-process server instead.
    """
    os.environ.setdefault("PREFECT_API_URL", get_settings().prefect_api_url)
    # With PREFECT_API_URL set empty Prefect starts a temporary server, which first
    # builds its database: on a busy machine that takes longer than Prefect's 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    keep_out_of_home()  # Prefect's home, and matplotlib's folder, in the data folder


def answer_people_promptly() -> None:
    """Bound how long a person's click waits on an unreachable Prefect server.

    Prefect's client retries a lost connection five times with exponential backoff, a
    minute in all: an approver would stare at a spinning page, the deal's row locked,
    and their browser would give up first. Two quick retries ride out a server restart's
    first seconds; after that the page says "try again" and nothing is recorded.
    Operators may still set either variable themselves.
    """
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "2")
    os.environ.setdefault("PREFECT_API_REQUEST_TIMEOUT", "15")


_shared: dict[str, SyncPrefectClient] = {}
_shared_lock = threading.Lock()


@contextmanager
def prefect_client() -> Iterator[SyncPrefectClient]:
    """A Prefect client for this process's calls: the flow run's own inside a run,
    otherwise one kept open per API address for the life of the process.

    Every new client builds a TLS trust store (about 14 ms of CPU, even for a plain-HTTP
    address) and connects anew, and a click on an approval link asks Prefect several
    times while it waits for the run to reach its gate. The client is safe to share
    between the web service's threads.
    """
    from prefect.client.orchestration import get_client
    from prefect.context import SyncClientContext
    from prefect.settings import PREFECT_API_URL

    address = PREFECT_API_URL.value()
    if SyncClientContext.get() is not None or not address:
        # In a run its client is the one to use; with no address Prefect would start a
        # temporary server for this client, which must not outlive the call.
        with get_client(sync_client=True) as client:
            yield client
        return
    with _shared_lock:
        if address not in _shared:
            opened = get_client(sync_client=True).__enter__()
            atexit.register(opened.__exit__, None, None, None)
            _shared[address] = opened
        client = _shared[address]
    yield client


def pause_state(run_id: str) -> tuple[str, str | None]:
    """The run's state type and, when it is paused, the key it waits under."""
    with prefect_client() as client:
        run = client.read_flow_run(UUID(run_id))
    if run.state is None:
        return "UNKNOWN", None
    return run.state.type.value, run.state.state_details.pause_key


def resume_with_answer(run_id: str, step: str, answer: BaseModel) -> None:
    """Resume the run waiting for ``step`` (its base key) with ``answer`` and its proof.

    NotPausedError if the run does not wait for that step. A run an earlier release
    suspended stored a schema that refuses fields added since (the proof itself, a
    newer optional field): those are left out, and what the run is not sent Dealflow's
    database records (dealflow/infra/answer_proof.py).
    """
    from prefect.exceptions import NotPausedError, PrefectHTTPStatusError

    with prefect_client() as client:
        state = client.read_flow_run(UUID(run_id)).state
        key = state.state_details.pause_key if state is not None else None
        if state is None or not state.is_paused() or key is None or not waits_for(key, step):
            raise NotPausedError(f"run {run_id} does not wait for {step}")
        keyset = state.state_details.run_input_keyset or {}
        try:
            schema = json.loads(client.read_flow_run_input(UUID(run_id), keyset["schema"]))
        except KeyError:
            schema = None
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 404:
                raise  # a busy or failing server: the caller says "try again"
            schema = None  # not stored yet: the run is being suspended under a new schema
    known = set(schema.get("properties", {})) if schema is not None else None
    resume_with_input(
        run_id, proven_payload(run_id, key, answer, get_settings().signing_key(), known)
    )


def resume_with_input(run_id: str, run_input: dict[str, object], patience: float = 10.0) -> None:
    """Resume a suspended run with ``run_input``.

    Prefect marks a run suspended a moment before it stores the input schema the run
    waits for; a resume in that moment is refused, so it is tried again for a while.
    """
    import time

    deadline = time.monotonic() + patience
    while True:
        try:
            _resume(UUID(run_id), run_input)
            return
        except RuntimeError as exc:
            if "schema not found" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _resume(run_id: UUID, run_input: dict[str, object]) -> None:
    """Prefect's ``resume_flow_run``, on this process's shared client."""
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.responses import SetStateStatus
    from prefect.exceptions import FlowPauseTimeout, NotPausedError

    with prefect_client() as client:
        run = client.read_flow_run(run_id)
        if run.state is None or not run.state.is_paused():
            raise NotPausedError("Cannot resume a run that isn't paused!")
        response = client.resume_flow_run(run_id, run_input=run_input)
    if response.status == SetStateStatus.REJECT:
        if response.state is not None and response.state.type == StateType.FAILED:
            raise FlowPauseTimeout("Flow run can no longer be resumed.")
        reason = getattr(response.details, "reason", None)
        raise RuntimeError(f"Cannot resume this run: {reason}")


# States in which no process runs the flow: a cancelled run ends there and then.
_NO_PROCESS = {"SCHEDULED", "PAUSED", "CRASHED"}
# States in which a process may run it: its worker or runner ends the process first.
_PROCESS = {"PENDING", "RUNNING"}


def cancel_run(run_id: str, message: str) -> str:
    """Cancel the run ``run_id`` unless it has ended (Completed, Failed, Cancelled or
    being cancelled): a run that holds no process (scheduled, suspended, crashed) is
    Cancelled, named "Superseded", at once; one that may hold a process is set Cancelling,
    for its worker or runner to end that process, as Prefect's own Cancel does. The run's
    state type as this leaves it. Raises what the client raises (ObjectNotFound for a
    run Prefect does not know, httpx.HTTPError for an unreachable server)."""
    from prefect.states import Cancelled, Cancelling, State

    with prefect_client() as client:
        state = client.read_flow_run(UUID(run_id)).state
        now = state.type.value if state is not None else "UNKNOWN"
        if now in _NO_PROCESS:
            cancelled: State[None] = Cancelled(name="Superseded", message=message)
            client.set_flow_run_state(UUID(run_id), cancelled, force=True)
            return "CANCELLED"
        if now in _PROCESS:
            cancelling: State[None] = Cancelling(message=message)
            result = client.set_flow_run_state(UUID(run_id), cancelling)
            return result.state.type.value if result.state is not None else now
    return now
