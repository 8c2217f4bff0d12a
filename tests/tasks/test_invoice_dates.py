"""An invoice falls due on a working day of the deal team's calendar, on a clock the test sets."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.intake.submit import load_deal_file, store_deal
from models.settings import PROJECT_ROOT
from models.tables import Invoice
from tasks.handoff import issue_invoices

pytestmark = pytest.mark.usefixtures("database_url")


def first_due_date(issued: dt.date, monkeypatch: pytest.MonkeyPatch) -> dt.date:
    """The due date of the signing invoice of examples/xinghe.json (net 30 days) issued
    on ``issued`` in Shanghai."""
    noon_in_shanghai = dt.datetime.combine(issued, dt.time(4), dt.UTC)
    monkeypatch.setattr("tasks.handoff.utcnow", lambda: noon_in_shanghai)
    intake = load_deal_file(PROJECT_ROOT / "examples" / "xinghe.json")
    intake = intake.model_copy(update={"deal_id": f"D{uuid.uuid4().hex[:8].upper()}-XINGHE"})
    store_deal(intake)
    issue_invoices.fn(intake.deal_id)
    with session_scope() as session:
        invoice = session.scalars(
            select(Invoice).where(Invoice.deal_id == intake.deal_id, Invoice.sequence == 1)
        ).one()
        assert invoice.issue_date == issued
        return invoice.due_date


@pytest.mark.parametrize(
    ("issued", "due"),
    [
        # 30 days later is Saturday 14 February 2026, a working day in China (调休).
        (dt.date(2026, 1, 15), dt.date(2026, 2, 14)),
        # Friday the 20th and Monday the 23rd are days off in exchange, the Spring
        # Festival's; the weekend between them is one.
        (dt.date(2026, 1, 21), dt.date(2026, 2, 24)),
        (dt.date(2026, 1, 24), dt.date(2026, 2, 24)),
        # Saturday 28 February is a working day too.
        (dt.date(2026, 1, 29), dt.date(2026, 2, 28)),
    ],
    ids=str,
)
def test_a_china_invoice_falls_due_on_a_working_day_of_china(
    issued: dt.date, due: dt.date, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert first_due_date(issued, monkeypatch) == due
