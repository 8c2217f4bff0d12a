"""Whether a queued dunning letter should still go out when its turn to be sent comes.

Letters are claimed by the payment check and sent afterwards (or by a later run, when
SMTP was down); by then the customer may have paid, or the invoice may be disputed or
written off. Such a letter is cancelled, never sent.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import keys
from models.tables import Invoice, InvoiceStatus, SentMessage


def letter_stale(session: Session, row: SentMessage) -> str | None:
    """Why the customer letter in ``row`` must not be sent now, or None to send it."""
    if row.kind != "dunning":
        return None
    number = keys.invoice_number_of_mail(row.key)
    invoice = session.scalar(select(Invoice).where(Invoice.number == number))
    if invoice is None:
        return f"{number} no longer exists"
    if invoice.status not in InvoiceStatus.COLLECTIBLE or invoice.balance <= 0:
        return f"{number} is {invoice.status.replace('_', ' ')} now"
    return None
