"""The SMTP side of the benchmarks: an aiosmtpd handler that notes when each email arrived.

Latency is measured to the arrival of a deal's next email at this process's SMTP
server, on this process's clocks, so the handler stamps every message at the end of its
DATA. The load benchmark also reacts to each email as it arrives (it approves the gate
the email asks about), hence the listening variant.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from bench.script import BenchError


@dataclass(frozen=True)
class Received:
    message: EmailMessage
    monotonic: float
    wall: float


class TimedInbox:
    """An aiosmtpd handler like tests/conftest.py's Inbox that also notes when each
    message arrived (the end of its DATA), on this process's clocks."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._changed = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        arrived, wall = time.monotonic(), time.time()
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._changed:
            self.received.append(Received(message, arrived, wall))
            self._changed.notify_all()
        return "250 OK"

    def wait_for(self, predicate: Callable[[EmailMessage], bool], timeout: float) -> Received:
        """The first message that matches; BenchError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [r for r in self.received if predicate(r.message)]
                if found:
                    return found[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError(f"no such email within {timeout:.0f}s")
                self._changed.wait(remaining)


class ListeningInbox(TimedInbox):
    """TimedInbox that also hands every message to its listeners as it arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners: list[Callable[[Received], None]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        received = self.received[-1]  # appended just now: nothing else ran in between
        for listener in list(self.listeners):
            listener(received)
        return reply
