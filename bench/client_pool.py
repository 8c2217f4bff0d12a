"""A pool of client threads that submit, approve, create and resume on the benchmarks' behalf.

Each thread holds its own connections (an HTTP client for the web service, Prefect's
client for its API) and takes jobs by priority, so that approvals and resumes of the
deals under way go before new submissions: a deal waits at its gate no longer than
the queue in front of it makes it.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx
    from prefect.client.orchestration import SyncPrefectClient

HTTP_TIMEOUT = 60.0  # one request; the web service may wait up to 10 s for a run's gate
RETRIES = 5  # of a request answered 503 (try again), one second apart
URGENT, LATER = 0, 1  # approvals and resumes go before submissions and creations


def retry_on_503(send: Callable[[], httpx.Response]) -> httpx.Response:
    """``send`` again, up to RETRIES times in all, while the web service answers 503 (try
    again: the deal is still on its way to its gate); the last answer."""
    for _attempt in range(RETRIES):
        response = send()
        if response.status_code != 503:
            break
        time.sleep(1)
    return response


class Clients:
    """One client thread's connections: HTTP to the web service, and Prefect's client."""

    def __init__(self, resources: ExitStack) -> None:
        self._resources = resources
        self._http: httpx.Client | None = None
        self._prefect: SyncPrefectClient | None = None

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            import httpx

            self._http = self._resources.enter_context(httpx.Client(timeout=HTTP_TIMEOUT))
        return self._http

    @property
    def prefect(self) -> SyncPrefectClient:
        if self._prefect is None:
            from prefect.client.orchestration import get_client

            self._prefect = self._resources.enter_context(get_client(sync_client=True))
        return self._prefect


Job = Callable[[Clients], None]


class ClientPool:
    """``size`` threads, each one client, taking jobs by priority (then first come)."""

    def __init__(self, size: int, on_error: Callable[[BaseException], None]) -> None:
        self._jobs: queue.PriorityQueue[tuple[int, int, Job | None]] = queue.PriorityQueue()
        self._order = iter(range(sys.maxsize))
        self._lock = threading.Lock()
        self._on_error = on_error
        self._threads = [
            threading.Thread(target=self._serve, name=f"client-{n}", daemon=True)
            for n in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, priority: int, job: Job) -> None:
        with self._lock:
            self._jobs.put((priority, next(self._order), job))

    def _serve(self) -> None:
        with ExitStack() as resources:
            clients = Clients(resources)
            while True:
                _priority, _order, job = self._jobs.get()
                if job is None:
                    return
                try:
                    job(clients)
                except Exception as exc:  # recorded by the job's owner; the thread goes on
                    self._on_error(exc)

    def close(self, cancel: bool = False) -> None:
        """Stop the threads once the queued jobs are done, or at once with ``cancel``
        (queued jobs dropped; a request under way may still finish: the threads are
        daemons, the stack goes down after this anyway)."""
        with self._lock:
            if cancel:
                while not self._jobs.empty():
                    self._jobs.get_nowait()
            for _ in self._threads:
                self._jobs.put((sys.maxsize, next(self._order), None))
        deadline = time.monotonic() + (5.0 if cancel else HTTP_TIMEOUT + 5)
        for thread in self._threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))

    @contextmanager
    def running(self) -> Iterator[ClientPool]:
        """The pool, closed on the way out: cancelled if something went wrong."""
        try:
            yield self
        except BaseException:
            self.close(cancel=True)
            raise
        self.close()
