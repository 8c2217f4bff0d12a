"""How often a client may fail a login or open links, counted in this process.

Each web service process keeps its own counts, in memory: with two processes behind one
address a client gets up to twice the attempts, and a restart forgets them. That is
enough to turn a password or token guessing run from thousands of tries a minute into a
handful; docs/deployment.md says so. The clock is passed in, so that tests move it
instead of sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from models.settings import Settings

Clock = Callable[[], float]
# Keys remembered per window at most (client addresses, user names): the least recently
# seen is forgotten first, so that a flood of made-up names cannot exhaust memory.
MAX_KEYS = 10_000


class SlidingWindow:
    """At most ``limit`` events per key within any ``seconds``."""

    def __init__(
        self, limit: int, seconds: float, clock: Clock = time.monotonic, max_keys: int = MAX_KEYS
    ) -> None:
        self.limit, self.seconds, self.clock, self.max_keys = limit, seconds, clock, max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = deque()
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)
        self._events.move_to_end(key)
        while events and events[0] <= now - self.seconds:
            events.popleft()
        return events

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may have another event; 0 if it may now."""
        with self._lock:
            now = self.clock()
            events = self._recent(key, now)
            if len(events) < self.limit:
                return 0.0
            return events[-self.limit] + self.seconds - now

    def hit(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            self._recent(key, now).append(now)

    def clear(self, key: str) -> None:
        with self._lock:
            self._events.pop(key, None)


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))


@dataclass
class Limits:
    """The web service's limits: failed finance logins per user name and per client
    address, and requests to the link pages (approval, acceptance, deal page) per client
    address."""

    failed_logins_by_user: SlidingWindow
    failed_logins_by_address: SlidingWindow
    link_requests: SlidingWindow

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = time.monotonic) -> Limits:
        window = settings.login_failure_window_seconds
        return cls(
            SlidingWindow(settings.login_failures_per_user, window, clock),
            SlidingWindow(settings.login_failures_per_address, window, clock),
            SlidingWindow(settings.link_requests_per_minute, 60, clock),
        )

    def login_wait(self, user: str, address: str) -> float:
        """Seconds before ``user`` may try to log in from ``address`` again; 0: now."""
        return max(
            self.failed_logins_by_user.wait(user), self.failed_logins_by_address.wait(address)
        )

    def login_failed(self, user: str, address: str) -> None:
        self.failed_logins_by_user.hit(user)
        self.failed_logins_by_address.hit(address)

    def logged_in(self, user: str) -> None:
        """A right password clears the user's failures (not the address's: a client with
        one good login must not earn more guesses at others)."""
        self.failed_logins_by_user.clear(user)

    def link_request(self, address: str) -> float:
        """Count a request to a link page; seconds to wait if it is one too many."""
        wait = self.link_requests.wait(address)
        if not wait:
            self.link_requests.hit(address)
        return wait
