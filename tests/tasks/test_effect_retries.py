"""Effect tasks retry what can pass by itself (a refused connection), never our own bugs."""

from __future__ import annotations

from typing import Any

import pytest
from prefect import flow

from tasks.effect import effect_task

pytestmark = pytest.mark.stack


def flaky(error: Exception, failures: int) -> tuple[Any, list[int]]:
    calls: list[int] = []

    @effect_task("flaky-effect")
    def effect() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "done"

    return effect.with_options(retry_delay_seconds=0), calls


def test_a_transient_failure_is_retried_until_it_passes(stack: Any) -> None:
    effect, calls = flaky(ConnectionRefusedError("SMTP is restarting"), failures=2)

    @flow
    def run() -> str:
        return str(effect())

    assert run() == "done"
    assert len(calls) == 3


def test_a_bug_fails_at_once(stack: Any) -> None:
    effect, calls = flaky(ValueError("a bug of ours"), failures=1)

    @flow
    def run() -> str:
        return str(effect())

    with pytest.raises(ValueError, match="a bug of ours"):
        run()
    assert len(calls) == 1
