"""Seeding invoiced deals for the finance tests, straight through Dealflow's own code."""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid

from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.infra.records import get_deal
from dealflow.intake.submit import load_deal_file, store_deal
from models.settings import PROJECT_ROOT
from models.tables import Invoice
from tasks.handoff import INVOICED_AT_ACCEPTANCE, issue_invoices

BILLING = "ap@acme-logistics.example"
REP = "sam.rivera@example.com"


def invoiced_deal(
    due: dt.date, example: str = "acme.json", customer: str | None = None, deal_id: str = ""
) -> tuple[str, list[str]]:
    """A deal of ``example`` with all its invoices issued and due on ``due``; its id
    and invoice numbers. The deal waits for payment."""
    intake = load_deal_file(PROJECT_ROOT / "examples" / example)
    updates: dict[str, object] = {"deal_id": deal_id or f"F{uuid.uuid4().hex[:8].upper()}"}
    if customer is not None:
        updates["customer"] = intake.customer.model_copy(update={"name": customer})
    intake = intake.model_copy(update=updates)
    store_deal(intake)
    issue_invoices.fn(intake.deal_id)
    issue_invoices.fn(intake.deal_id, INVOICED_AT_ACCEPTANCE)
    with session_scope() as session:
        deal = get_deal(session, intake.deal_id)
        deal.flow_run_id, deal.stage = str(uuid.uuid4()), "awaiting_payment"
        invoices = session.scalars(
            select(Invoice).where(Invoice.deal_id == intake.deal_id).order_by(Invoice.sequence)
        ).all()
        for invoice in invoices:
            invoice.due_date = due
        numbers = [invoice.number for invoice in invoices]
    return intake.deal_id, numbers


def invoice(number: str) -> Invoice:
    with session_scope() as session:
        row = session.scalar(select(Invoice).where(Invoice.number == number))
        assert row is not None
        session.expunge(row)
        return row


def form_token_of(page: str, action: str) -> str:
    """The anti-forgery token of the form on ``page`` that posts to ``action``."""
    pattern = (
        rf'<form method="post" action="{re.escape(html.escape(action))}"[^>]*>\s*'
        r'<input type="hidden" name="form_token" value="([^"]+)"'
    )
    match = re.search(pattern, page)
    assert match, f"no form posting to {action} on the page"
    return html.unescape(match.group(1))
