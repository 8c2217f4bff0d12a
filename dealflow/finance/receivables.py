"""Finance's levers on the ladder: disputes, collections holds, and the list of what is
still to be paid (for the finance page and the CLI)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.records import add_transition, get_deal
from models import keys
from models.tables import CollectionHold, Invoice, InvoiceStatus


class ReceivableError(ValueError):
    """Nothing was changed; the message says why."""


def _invoice(session: Session, number: str) -> Invoice:
    invoice = session.scalar(select(Invoice).where(Invoice.number == number).with_for_update())
    if invoice is None:
        raise ReceivableError(f"there is no invoice {number}")
    return invoice


def _note(session: Session, invoice: Invoice, lever: str, event: str, actor: str) -> None:
    deal = get_deal(session, invoice.deal_id)
    now = utcnow()
    add_transition(
        session,
        deal,
        key=keys.finance_lever(lever, invoice.number, now.isoformat()),
        stage=deal.stage,
        event=event,
        actor=actor,
    )


def dispute_invoice(number: str, reason: str, by: str) -> str:
    """Take the invoice out of the ladder until the dispute is resolved."""
    if not reason.strip():
        raise ReceivableError("say what the customer disputes (--reason)")
    with session_scope() as session:
        invoice = _invoice(session, number)
        if invoice.status not in InvoiceStatus.COLLECTIBLE:
            raise ReceivableError(
                f"{number} is {invoice.status.replace('_', ' ')}: nothing to dispute"
            )
        invoice.status, invoice.dispute_reason = InvoiceStatus.DISPUTED, reason.strip()
        _note(session, invoice, "dispute", f"{number} disputed: {reason.strip()}", by)
    return f"{number} is disputed and out of the dunning ladder until the dispute is resolved."


def resolve_dispute(number: str, by: str) -> str:
    """Put a disputed invoice back in the ladder, at the level it had reached."""
    with session_scope() as session:
        invoice = _invoice(session, number)
        if invoice.status != InvoiceStatus.DISPUTED:
            raise ReceivableError(f"{number} is not disputed (it is {invoice.status})")
        invoice.status = (
            InvoiceStatus.PARTIALLY_PAID if invoice.paid_amount > 0 else InvoiceStatus.OPEN
        )
        invoice.dispute_reason = None
        _note(session, invoice, "dispute", f"{number}: dispute resolved", by)
    return f"{number} is back in the dunning ladder."


def write_off(number: str, reason: str, by: str) -> tuple[str, str]:
    """Give up on the invoice's open balance: it settles the invoice (and can close the
    deal). The message, and the deal to try to close."""
    if not reason.strip():
        raise ReceivableError("say why the balance is written off (--reason)")
    with session_scope() as session:
        invoice = _invoice(session, number)
        if invoice.status in InvoiceStatus.SETTLED:
            raise ReceivableError(f"{number} is {invoice.status.replace('_', ' ')} already")
        balance = invoice.balance
        invoice.status = InvoiceStatus.WRITTEN_OFF
        _note(
            session,
            invoice,
            "write-off",
            f"{number}: {balance:,.2f} {invoice.currency} written off: {reason.strip()}",
            by,
        )
        return f"{number}: {balance:,.2f} {invoice.currency} written off.", invoice.deal_id


def reopen(number: str, by: str) -> str:
    """Undo a write-off: the invoice is back in the ladder at the level it had reached."""
    with session_scope() as session:
        invoice = _invoice(session, number)
        if invoice.status != InvoiceStatus.WRITTEN_OFF:
            raise ReceivableError(f"{number} is not written off (it is {invoice.status})")
        invoice.status = (
            InvoiceStatus.PARTIALLY_PAID if invoice.paid_amount > 0 else InvoiceStatus.OPEN
        )
        _note(session, invoice, "reopen", f"{number}: reopened", by)
    return f"{number} is open again."


def clear_hold(customer: str, by: str) -> str:
    with session_scope() as session:
        hold = session.get(CollectionHold, customer, with_for_update=True)
        if hold is None or hold.cleared_at is not None:
            raise ReceivableError(f"{customer} is not on collections hold")
        hold.cleared_at, hold.cleared_by = utcnow(), by
    return f"{customer} is off collections hold; their open invoices are back in the ladder."


@dataclass(frozen=True)
class OpenInvoice:
    number: str
    deal_id: str
    customer: str
    currency: str
    amount: Decimal
    balance: Decimal
    due_date: dt.date
    status: str
    dunning_level: str | None
    on_hold: bool


def open_invoices(limit: int = 200) -> tuple[list[OpenInvoice], int]:
    """Invoices with money to come, the longest overdue first; and how many there are."""
    unsettled = Invoice.status.not_in(InvoiceStatus.SETTLED)
    active_holds = select(CollectionHold.customer_name).where(CollectionHold.cleared_at.is_(None))
    with session_scope() as session:
        total = session.scalar(select(func.count()).select_from(Invoice).where(unsettled)) or 0
        rows = session.execute(
            select(Invoice, Invoice.customer_name.in_(active_holds))
            .where(unsettled)
            .order_by(Invoice.due_date, Invoice.number)
            .limit(limit)
        ).all()
        listed = [
            OpenInvoice(
                number=invoice.number,
                deal_id=invoice.deal_id,
                customer=invoice.customer_name,
                currency=invoice.currency,
                amount=invoice.amount,
                balance=invoice.balance,
                due_date=invoice.due_date,
                status=invoice.status,
                dunning_level=invoice.dunning_level,
                on_hold=bool(held),
            )
            for invoice, held in rows
        ]
    return listed, total


def active_holds() -> list[CollectionHold]:
    with session_scope() as session:
        holds = session.scalars(
            select(CollectionHold)
            .where(CollectionHold.cleared_at.is_(None))
            .order_by(CollectionHold.customer_name)
        ).all()
        session.expunge_all()
        return list(holds)
