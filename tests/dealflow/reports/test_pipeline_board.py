"""The pipeline board shows every deal whose run is suspended, with whom it waits on and
since when: at an approval gate, and after the handoff at the customer's acceptance and
payment (those deals have the outcome ``handed_off`` but are not closed). Rows written
through the models into SQLite and PostgreSQL, as the deal's run leaves them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dealflow.infra.db import session_scope
from dealflow.infra.rendering import render
from dealflow.reports.board import board
from dealflow.reports.board_tables import board_tables
from models.matrix import load_matrix
from models.settings import get_settings
from models.tables import Deal
from tests.markdown_view import as_shown
from tests.support import deal_row

NOW = dt.datetime(2026, 3, 10, 10, tzinfo=dt.UTC)  # Tue 11:00 in Berlin
OMAR = "Omar Haddad (Delivery manager), to record the customer's acceptance"
FINANCE = "Finance team (Finance), for the customer's payment"


def _deal(deal_id: str, stage: str, **extra: Any) -> Deal:
    deal: Deal = deal_row(deal_id, stage, **extra)
    return deal


def _waiting(name: str, email: str, since: dt.datetime) -> dict[str, object]:
    return {"waiting_on": email, "waiting_on_name": name, "waiting_since": since}


def seed_suspended_deals() -> None:
    """A1 at the manager's gate since Mon 09:00 Berlin; A2 in delivery waiting for its
    acceptance, A3 and A4 waiting for their payment; A5 paid and closed."""
    with session_scope() as session:
        session.add_all(
            [
                _deal(
                    "A1",
                    "approval:manager",
                    **_waiting("Mara Keller", "mara.keller@example.com", at(9, 8)),
                ),
                _deal(
                    "A2",
                    "delivery",
                    outcome="handed_off",
                    **_waiting("Omar Haddad", "omar.haddad@example.com", at(4, 12)),
                ),
                _deal(
                    "A3",
                    "awaiting_payment",
                    outcome="handed_off",
                    **_waiting("Finance team", "finance@example.com", at(6, 9)),
                ),
                _deal(
                    "A4",
                    "awaiting_payment",
                    outcome="handed_off",
                    **_waiting("Finance team", "finance@example.com", at(2, 15)),
                ),
                _deal("A5", "closed", outcome="paid"),
            ]
        )


def at(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, tzinfo=dt.UTC)


def test_deals_waiting_for_acceptance_or_payment_are_open_and_waiting(database_url: str) -> None:
    seed_suspended_deals()
    matrix = load_matrix(get_settings().matrix_path)
    with session_scope() as session:
        shown = board(session, matrix, NOW)

    assert [(w.deal_id, w.stage, w.waiting_on, w.since) for w in shown.waiting] == [
        ("A1", "approval:manager", "Mara Keller", at(9, 8)),  # the one with a time limit
        ("A4", "awaiting_payment", FINANCE, at(2, 15)),  # then the longest waiting
        ("A2", "delivery", OMAR, at(4, 12)),
        ("A3", "awaiting_payment", FINANCE, at(6, 9)),
    ]
    # Mon 8 + Tue 2 business hours of the manager gate's 24.
    assert shown.waiting[0].left_hours == 14.0
    assert [w.left_hours for w in shown.waiting[1:]] == [None, None, None]
    assert shown.open_by_stage == [
        ("approval:manager", 1),
        ("delivery", 1),
        ("awaiting_payment", 2),
    ]
    assert shown.closed_by_outcome == [("paid", 1)]


def test_the_board_page_lists_them_with_whom_they_wait_on(database_url: str) -> None:
    seed_suspended_deals()
    matrix = load_matrix(get_settings().matrix_path)
    with session_scope() as session:
        shown = board(session, matrix, NOW)
    tables = board_tables(matrix, shown, lambda deal_id: f"http://dealflow.example/{deal_id}")
    page = as_shown(
        render(
            "artifacts/tables.md", title="Pipeline board", intro="", tables=tables["pipeline-board"]
        )
    )

    waiting = page[page.index("\nWaiting deals") : page.index("\nDeals by stage")]
    assert waiting.splitlines()[3:] == [
        "| [A1](http://dealflow.example/A1) | Sales manager approval | emea | - "
        "| Mara Keller | 2026-03-09 08:00 UTC | 14.0 h left |",
        "| [A4](http://dealflow.example/A4) | Awaiting payment | emea | - "
        f"| {FINANCE} | 2026-03-02 15:00 UTC | no limit |",
        "| [A2](http://dealflow.example/A2) | Delivery, awaiting acceptance | emea | - "
        f"| {OMAR} | 2026-03-04 12:00 UTC | no limit |",
        "| [A3](http://dealflow.example/A3) | Awaiting payment | emea | - "
        f"| {FINANCE} | 2026-03-06 09:00 UTC | no limit |",
    ]
    by_stage = page[page.index("\nDeals by stage") :]
    assert by_stage.splitlines()[3:] == [
        "| Sales manager approval | 1 |",
        "| Delivery, awaiting acceptance | 1 |",
        "| Awaiting payment | 2 |",
        "| closed: paid | 1 |",
    ]
    assert "handed off" not in page
