"""How far open deals reach (``dealflow matrix check`` checks the calendars of those
years): a deal handed off to delivery is open until it is paid, so its delivery start
counts; a paid, rejected or lost deal's does not."""

from __future__ import annotations

import datetime as dt

from dealflow.infra.db import session_scope
from dealflow.infra.records import latest_open_date
from models.tables import Deal
from tests.support import deal_row


def _deal(deal_id: str, stage: str, outcome: str | None, delivery_start: str) -> Deal:
    deal: Deal = deal_row(deal_id, stage, delivery_start, outcome=outcome)
    return deal


def test_deals_in_delivery_reach_their_delivery_start(database_url: str) -> None:
    with session_scope() as session:
        session.add_all(
            [
                _deal("B1", "approval:manager", None, "2026-06-01"),
                _deal("B2", "closed", "paid", "2030-01-15"),
                _deal("B3", "rejected", "rejected", "2030-02-01"),
            ]
        )
    assert latest_open_date() == dt.date(2026, 6, 1)

    with session_scope() as session:
        session.add(_deal("B4", "delivery", "handed_off", "2028-03-01"))
    assert latest_open_date() == dt.date(2028, 3, 1)
