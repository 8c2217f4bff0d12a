"""Recording money received: one payment at a time (CLI, finance page) or a bank statement.

A payment applies once: each has a key (the bank line's fingerprint or the details
finance typed), unique in the database, so re-importing a statement changes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.echo import echo
from dealflow.infra.records import add_transition, get_deal
from models import keys
from models.deal import CENT
from models.tables import Invoice, InvoiceStatus, Payment


class PaymentError(ValueError):
    """The payment cannot be recorded; nothing was changed."""


class DuplicatePayment(PaymentError):
    pass


class LookAlikePayment(DuplicatePayment):
    """The same amount, days apart, came in by the other channel (by hand, by the bank)."""


@dataclass(frozen=True)
class PaymentDetails:
    invoice_number: str
    amount: Decimal
    received_on: dt.date
    reference: str = ""
    currency: str | None = None  # checked against the invoice when given
    key: str = ""  # default: from the details, so the same entry twice is one payment
    second_of_same_amount: bool = False  # finance says a look-alike payment is a new one


@dataclass(frozen=True)
class PaymentResult:
    invoice_number: str
    deal_id: str
    applied: Decimal
    excess: Decimal
    balance: Decimal
    currency: str
    status: str
    deal_settled: bool

    def describe(self) -> str:
        text = (
            f"{self.invoice_number}: {self.applied:,.2f} {self.currency} applied, "
            f"balance {self.balance:,.2f} {self.currency} ({self.status.replace('_', ' ')})"
        )
        if self.excess:
            text += f"; overpaid by {self.excess:,.2f} {self.currency}: a credit to return"
        return text


PLAIN_AMOUNT = re.compile(r"-?\d+([.,]\d{1,2})?")
GROUPED_AMOUNT = re.compile(r"-?\d{1,3}(,\d{3})+(\.\d{1,2})?")  # 1,250.00


def parse_amount(text: str) -> Decimal:
    """An amount as people and banks write it: ``1250.00``, ``1250,00`` or ``1,250.00``.
    Anything else (``1.250,00``, ``1,5000``) is refused rather than guessed."""
    cleaned = text.strip().replace(" ", "")
    if PLAIN_AMOUNT.fullmatch(cleaned):
        return Decimal(cleaned.replace(",", "."))
    if GROUPED_AMOUNT.fullmatch(cleaned):
        return Decimal(cleaned.replace(",", ""))
    raise PaymentError(
        f"not an amount: {echo(text)} (write 1250.00, 1250,00 or 1,250.00; at most 2 decimals)"
    )


def manual_key(details: PaymentDetails) -> str:
    return (
        f"manual:{details.invoice_number}:{details.received_on.isoformat()}:"
        f"{details.amount.quantize(CENT)}:{details.reference.strip()}"
    )


def check_amount(amount: Decimal) -> None:
    if not amount.is_finite() or amount <= 0:
        raise PaymentError(f"the amount must be above 0 (got {amount})")
    if amount != amount.quantize(CENT):
        raise PaymentError(f"the amount has more than 2 decimals (got {amount})")


def deal_settled(session: Session, deal_id: str) -> bool:
    """True when the deal waits for payment and none of its invoices has money to come."""
    deal = get_deal(session, deal_id)
    if deal.stage != "awaiting_payment":
        return False
    statuses = session.scalars(select(Invoice.status).where(Invoice.deal_id == deal_id)).all()
    return bool(statuses) and all(status in InvoiceStatus.SETTLED for status in statuses)


def apply_payment(
    session: Session, details: PaymentDetails, *, source: str, recorded_by: str
) -> PaymentResult:
    """Apply one payment to its invoice, in the caller's transaction."""
    check_amount(details.amount)
    invoice = _payable_invoice(session, details)
    key = details.key or manual_key(details)
    earlier = session.scalar(select(Payment).where(Payment.key == key))
    if earlier is not None and details.second_of_same_amount and not details.key:
        key, earlier = _next_free_key(session, key), None  # finance says it is another one
    if earlier is not None:
        raise DuplicatePayment(
            f"this payment was already recorded for {invoice.number} on "
            f"{earlier.recorded_at:%Y-%m-%d %H:%M} UTC by {earlier.recorded_by}; nothing changed"
        )
    if not details.second_of_same_amount:
        _refuse_look_alike(session, invoice, details, key)
    payment = _apply(session, invoice, details, key, source=source, recorded_by=recorded_by)
    result = PaymentResult(
        invoice_number=invoice.number,
        deal_id=invoice.deal_id,
        applied=payment.applied,
        excess=payment.excess,
        balance=invoice.balance,
        currency=invoice.currency,
        status=invoice.status,
        deal_settled=False,
    )
    deal = get_deal(session, invoice.deal_id)
    reference = f" (reference {details.reference})" if details.reference else ""
    add_transition(
        session,
        deal,
        key=keys.payment_recorded(payment.id),
        stage=deal.stage,
        event=f"Payment received on {details.received_on.isoformat()}{reference}: "
        + result.describe(),
        actor=recorded_by,
        at=payment.recorded_at,
    )
    return dataclasses.replace(result, deal_settled=deal_settled(session, invoice.deal_id))


def _payable_invoice(session: Session, details: PaymentDetails) -> Invoice:
    """The payment's invoice (locked), if it exists, is in the payment's currency and was
    not written off."""
    invoice = session.scalar(
        select(Invoice).where(Invoice.number == details.invoice_number).with_for_update()
    )
    if invoice is None:
        raise PaymentError(f"there is no invoice {details.invoice_number}")
    if details.currency and details.currency.upper() != invoice.currency:
        raise PaymentError(
            f"{invoice.number} is in {invoice.currency}, the payment in {details.currency.upper()}"
        )
    if invoice.status == InvoiceStatus.WRITTEN_OFF:
        raise PaymentError(f"{invoice.number} was written off: reopen it before recording money")
    return invoice


def _apply(
    session: Session,
    invoice: Invoice,
    details: PaymentDetails,
    key: str,
    *,
    source: str,
    recorded_by: str,
) -> Payment:
    """Record the payment and apply what the invoice still owes of it (the rest is an
    excess to return); the invoice is paid, or partially paid."""
    applied = min(details.amount, max(invoice.balance, Decimal(0)))
    now = utcnow()
    payment = Payment(
        key=key,
        invoice_id=invoice.id,
        amount=details.amount,
        applied=applied,
        excess=details.amount - applied,
        currency=invoice.currency,
        received_on=details.received_on,
        reference=details.reference,
        source=source,
        recorded_by=recorded_by,
        recorded_at=now,
    )
    session.add(payment)
    invoice.paid_amount += applied
    if invoice.balance <= 0:
        invoice.status, invoice.paid_at = InvoiceStatus.PAID, now
    elif invoice.status == InvoiceStatus.OPEN:
        invoice.status = InvoiceStatus.PARTIALLY_PAID
    session.flush()  # a concurrent import of the same line conflicts here
    return payment


def _next_free_key(session: Session, key: str) -> str:
    """The key of one more payment typed in just like the one keyed ``key``: ``key#2``,
    ``key#3``, ... (the same command run again is one more payment)."""
    taken = set(
        session.scalars(
            select(Payment.key).where(Payment.key.startswith(f"{key}#", autoescape=True))
        )
    )
    number = 2
    while f"{key}#{number}" in taken:
        number += 1
    return f"{key}#{number}"


SAME_PAYMENT_DAYS = 5  # how far apart the bank's date and the one typed in may be


def _refuse_look_alike(
    session: Session, invoice: Invoice, details: PaymentDetails, key: str
) -> None:
    """The same money recorded by hand and then imported from the bank (or the other
    way round) has two different keys: refuse the second unless finance says it is new."""
    by_hand = key.startswith("manual:")
    earlier = session.scalar(
        select(Payment).where(
            Payment.invoice_id == invoice.id,
            Payment.amount == details.amount,
            Payment.received_on.between(
                details.received_on - dt.timedelta(days=SAME_PAYMENT_DAYS),
                details.received_on + dt.timedelta(days=SAME_PAYMENT_DAYS),
            ),
            Payment.key.startswith("bank:") if by_hand else Payment.key.startswith("manual:"),
        )
    )
    if earlier is None:
        return
    how = "imported from the bank statement" if by_hand else "recorded by hand"
    hint = (
        "pass --second-payment if it is another one"
        if by_hand
        else "if it is another one, record it by hand with --second-payment"
    )
    raise LookAlikePayment(
        f"{invoice.number}: the same amount ({details.amount} {invoice.currency}) received "
        f"on {earlier.received_on} was already {how} by {earlier.recorded_by}"
        + (f" (reference {earlier.reference})" if earlier.reference else "")
        + f"; not applied: {hint}"
    )


def record_payment(details: PaymentDetails, *, source: str, recorded_by: str) -> PaymentResult:
    """Record one payment in its own transaction; PaymentError says why not."""
    try:
        with session_scope() as session:
            return apply_payment(session, details, source=source, recorded_by=recorded_by)
    except IntegrityError as exc:  # the same payment recorded at the same moment elsewhere
        raise DuplicatePayment(
            f"this payment for {details.invoice_number} was just recorded by someone else; "
            "nothing changed"
        ) from exc
