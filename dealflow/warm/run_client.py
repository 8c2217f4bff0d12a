"""The forked run's Prefect client, connected before Prefect's engine starts.

Prefect's client retries a refused connection only after it has once connected, so that a
wrong address fails at once. A run the worker hands over just as the Prefect server
restarts would then crash at the engine's first call, though the server is back seconds
later, and the deal would wait for the next sweep to recover it. Connected here first, the
one client the engine takes from the context rides out a restart as any connected client
does.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

# How long a run (and the worker starting it) waits for an unreachable Prefect server
# before giving up as Prefect would: the run reported Crashed once the server is back.
PATIENCE_SECONDS = 300.0
RETRY_SECONDS = 1.0


@contextmanager
def connected_run_client(patience: float = PATIENCE_SECONDS) -> Iterator[None]:
    """Enter Prefect's client context for this process once the server answers; the
    engine's ``get_client`` and ``SyncClientContext.get_or_create`` return its client."""
    from prefect.context import SyncClientContext

    deadline = time.monotonic() + patience
    said = False
    while True:
        context = SyncClientContext()
        try:
            context.__enter__()  # checks the server's version: a first call
        except Exception as exc:
            with suppress(Exception):  # the client was opened before the check failed
                context.client.__exit__(None, None, None)
            error: Exception = exc
        else:
            try:
                context.client.hello()
                break
            except Exception as exc:
                context.__exit__(None, None, None)
                error = exc
        if not unreachable(error) or time.monotonic() > deadline:
            raise error
        if not said:
            print(
                f"The Prefect server is unreachable ({error}); this run waits up to "
                f"{patience:.0f} s for it.",
                file=sys.stderr,
                flush=True,
            )
            said = True
        time.sleep(RETRY_SECONDS)
    try:
        yield
    finally:
        context.__exit__(None, None, None)


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a connection to the server refused, cut or
    timed out, as such or as Prefect's version check or its event stream words it."""
    import httpx
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    lost = (
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.RemoteProtocolError,
        ConnectionError,
        InvalidHandshake,
        ConnectionClosed,
    )
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, lost):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
