"""Failed finance logins and link pages are limited: 429 with Retry-After.

The limiter is tested with a clock the test moves (no sleeping), then through a web
service of its own with the default login limits and a low link limit, over real HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from models.settings import Settings, get_settings
from web.rate_limit import Limits, SlidingWindow, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_window_allows_its_limit_then_says_how_long_to_wait() -> None:
    clock = Clock()
    window = SlidingWindow(3, 60, clock)
    for _ in range(3):
        assert window.wait("a") == 0
        window.hit("a")
        clock.now += 10
    assert window.wait("a") == pytest.approx(30)  # the first hit leaves the window at 60 s
    assert window.wait("b") == 0, "each key counts for itself"
    clock.now += 29.5
    assert window.wait("a") == pytest.approx(0.5)
    assert retry_after(window.wait("a")) == "1"
    clock.now += 0.5
    assert window.wait("a") == 0
    window.hit("a")
    assert window.wait("a") == pytest.approx(10), "the second hit leaves next"


def test_a_window_forgets_the_least_recent_keys_beyond_its_size() -> None:
    clock = Clock()
    window = SlidingWindow(1, 60, clock, max_keys=3)
    for key in "abcd":
        window.hit(key)
    assert window.wait("a") == 0, "forgotten: a flood of names cannot fill memory"
    assert window.wait("d") > 0


def limits(clock: Clock, **settings: Any) -> Limits:
    values = {
        "login_failures_per_user": 5,
        "login_failures_per_address": 20,
        "login_failure_window_seconds": 900,
        "link_requests_per_minute": 60,
        **settings,
    }
    return Limits.from_settings(Settings(**values), clock)


def test_failed_logins_hold_back_the_user_name_from_any_address() -> None:
    clock = Clock()
    limit = limits(clock)
    for attempt in range(5):
        assert limit.login_wait("fiona", f"10.0.0.{attempt}") == 0
        limit.login_failed("fiona", f"10.0.0.{attempt}")
    assert limit.login_wait("fiona", "10.0.0.99") == pytest.approx(900)
    assert limit.login_wait("frank", "10.0.0.99") == 0
    clock.now += 900
    assert limit.login_wait("fiona", "10.0.0.99") == 0


def test_failed_logins_hold_back_the_address_whatever_the_name() -> None:
    clock = Clock()
    limit = limits(clock)
    for attempt in range(20):
        limit.login_failed(f"guess-{attempt}", "10.0.0.1")
        clock.now += 1
    assert limit.login_wait("fiona", "10.0.0.1") == pytest.approx(880)
    assert limit.login_wait("fiona", "10.0.0.2") == 0


def test_a_right_password_clears_the_name_but_not_the_address() -> None:
    clock = Clock()
    limit = limits(clock, login_failures_per_address=6)
    for _ in range(4):
        limit.login_failed("fiona", "10.0.0.1")
    limit.logged_in("fiona")
    for _ in range(2):
        limit.login_failed("fiona", "10.0.0.1")
    assert limit.login_wait("fiona", "10.0.0.2") == 0, "2 failures since the login"
    assert limit.login_wait("fiona", "10.0.0.1") > 0, "6 from this address"


def test_link_requests_are_counted_per_address_per_minute() -> None:
    clock = Clock()
    limit = limits(clock, link_requests_per_minute=3)
    assert [limit.link_request("10.0.0.1") for _ in range(3)] == [0, 0, 0]
    assert limit.link_request("10.0.0.1") == pytest.approx(60)
    assert limit.link_request("10.0.0.2") == 0
    clock.now += 60
    assert limit.link_request("10.0.0.1") == 0


# --- over HTTP --------------------------------------------------------------------

LINK_LIMIT = 10


@pytest.fixture(scope="module")
def limited(stack: Any, module_web_service: Callable[..., str]) -> str:
    """A web service on the stack's database with the default login limits and a low
    link limit; its base URL."""
    return module_web_service(DEALFLOW_LINK_REQUESTS_PER_MINUTE=str(LINK_LIMIT))


@pytest.mark.stack
def test_thirty_wrong_finance_logins_in_a_row_are_held_back(limited: str) -> None:
    page = f"{limited}/finance"
    answers = [httpx.get(page, auth=("finance", f"wrong-{n}")) for n in range(30)]
    assert [a.status_code for a in answers[:5]] == [401] * 5
    assert {a.status_code for a in answers[5:]} == {429}
    held = answers[-1]
    assert 1 <= int(held.headers["Retry-After"]) <= 900
    assert "Too many failed logins" in held.json()["detail"]
    # The right password does not get through now either: guessing on tells nothing.
    right = get_settings().finance_logins()["finance"]
    assert httpx.get(page, auth=("finance", right)).status_code == 429
    # Nor does guessing other names from the same address, once it failed 20 times.
    others = [httpx.get(page, auth=(f"name-{n}", "wrong")).status_code for n in range(16)]
    assert others == [401] * 15 + [429]
    # A request without a password is not a failure: the browser asks for one.
    assert httpx.get(page).status_code == 401


@pytest.mark.stack
def test_link_pages_are_limited_per_address(limited: str) -> None:
    answers = [httpx.get(f"{limited}/approvals/not.valid") for _ in range(LINK_LIMIT)]
    assert {a.status_code for a in answers} == {403}
    held = httpx.post(f"{limited}/acceptance/not.valid", data={})
    assert held.status_code == 429
    assert 1 <= int(held.headers["Retry-After"]) <= 60
    assert "Too many requests" in held.text and "nothing was changed" in held.text
    assert httpx.get(f"{limited}/deals/ANY?key=x").status_code == 429
    for page in ("signing", "survey", "progress", "repurchase"):
        assert httpx.get(f"{limited}/{page}/not.valid").status_code == 429, page
    assert httpx.get(f"{limited}/healthz").status_code == 200, "other pages are not limited"
