"""How every effect task is declared: idempotent by our own keys, retried on transient
failures only (the network and busy servers, never our own bugs)."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.exc import DBAPIError, OperationalError


def is_transient(exc: BaseException | None) -> bool:
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500  # 4xx: try again later; 5xx: permanent
    if isinstance(exc, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError):
        return True
    if isinstance(exc, ConnectionError | TimeoutError | socket.timeout):
        return True
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def retry_if_transient(_task: Any, _task_run: Any, state: Any) -> bool:
    """Prefect's retry_condition_fn: retry only errors that can pass by themselves."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False


P = ParamSpec("P")
R = TypeVar("R")


def effect_task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A task that does one effect. No Prefect cache or persisted result guards it: a
    deploy during a long wait would change the cache key, and our database already
    knows what was done."""
    return task(
        name=name,
        cache_policy=NO_CACHE,
        persist_result=False,
        retries=5,
        retry_delay_seconds=[2, 5, 15, 60, 300],
        retry_condition_fn=retry_if_transient,
    )
