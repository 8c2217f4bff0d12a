"""The deal's artifacts: a new version only when what it says changed (that each names
the deal's run is checked on the real stack, in tests/e2e)."""

from __future__ import annotations

import datetime as dt

import pytest

from tasks.artifacts import LINK_REFRESH, lasting, says_something_new

NOW = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)

BOARD = """# Deal ACME-1: Fleet

**Stage:** `approval:manager`

[Open the deal's page](https://deals.example.com/deals/ACME-1?key={token}) (status and timeline; the link works for 30 days and is renewed with this board)

| when | stage | what happened | who | comment |
|---|---|---|---|---|
| 2026-12-01 09:00 UTC | approval:manager | {event} | dealflow |  |

_Updated {moment}._
"""


def board(
    token: str = "aaa", event: str = "Requested", moment: str = "2026-12-01 09:00 UTC"
) -> str:
    return BOARD.format(token=token, event=event, moment=moment)


def test_a_fresh_link_and_a_later_moment_say_nothing_new() -> None:
    assert lasting(board()) == lasting(board(token="bbb", moment="2026-12-02 10:00 UTC"))
    assert lasting(board()) != lasting(board(event="Approved"))
    assert "Requested" in lasting(board())


@pytest.mark.parametrize(
    ("latest", "posted"),
    [
        (None, True),  # the deal's first board
        ((board(token="old"), NOW - dt.timedelta(hours=1)), False),
        ((board(event="Submitted"), NOW - dt.timedelta(hours=1)), True),
        # The same board, but its page link has lived half its life: a fresh one.
        ((board(token="old"), NOW - LINK_REFRESH - dt.timedelta(hours=1)), True),
    ],
    ids=["first", "unchanged", "changed", "link-half-way"],
)
def test_a_version_is_posted_only_when_the_board_changed(
    latest: tuple[str, dt.datetime] | None, posted: bool
) -> None:
    assert says_something_new(board(), latest, NOW) is posted
