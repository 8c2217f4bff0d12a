"""Whether queued dunning letters should still go out when their turn to be sent comes.

Letters are claimed by the payment check and sent afterwards (or by a later run, when
SMTP was down); by then the customer may have paid, or the invoice may be disputed or
written off. Such a letter is cancelled, never sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from models import keys
from models.tables import Invoice, InvoiceStatus, SentMessage


def stale_letters(connection: Connection, outbox_keys: Sequence[str]) -> dict[str, str]:
    """Why each customer letter among ``outbox_keys`` must not be sent now; the letters
    still due and every other email are left out. Two queries, however many keys."""
    letters = list(
        connection.scalars(
            select(SentMessage.key).where(
                SentMessage.key.in_(outbox_keys), SentMessage.kind == "dunning"
            )
        )
    )
    if not letters:
        return {}
    number_of = {key: keys.invoice_number_of_mail(key) for key in letters}
    invoices = {
        number: (status, amount - paid)
        for number, status, amount, paid in connection.execute(
            select(Invoice.number, Invoice.status, Invoice.amount, Invoice.paid_amount).where(
                Invoice.number.in_(set(number_of.values()))
            )
        )
    }
    stale: dict[str, str] = {}
    for key, number in number_of.items():
        if number not in invoices:
            stale[key] = f"{number} no longer exists"
            continue
        status, balance = invoices[number]
        if status not in InvoiceStatus.COLLECTIBLE or balance <= 0:
            stale[key] = f"{number} is {status.replace('_', ' ')} now"
    return stale
