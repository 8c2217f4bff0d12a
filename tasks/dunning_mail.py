"""What a dunning level sends: a letter to the customer, and to the people it notifies
one digest per check of the invoices that reached a level."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from models import keys
from models.finance import SALES_REP, DunningLevel
from models.matrix import Matrix
from models.tables import Invoice
from tasks.mailer import OutgoingEmail


@dataclass(frozen=True)
class Escalation:
    """One invoice that reached one level in this check."""

    invoice: str
    deal_id: str
    customer: str
    level: str
    level_title: str
    days_overdue: int
    balance: Decimal
    currency: str
    due_date: dt.date
    hold: bool

    def describe(self) -> str:
        when = (
            f"{self.days_overdue} days overdue"
            if self.days_overdue > 0
            else f"due {self.due_date.isoformat()}"
        )
        return (
            f"{self.invoice} ({self.customer}): {self.level_title}, {when}, "
            f"{self.balance:,.2f} {self.currency} open"
        )


def people_told(
    matrix: Matrix, level: DunningLevel, team: str, rep: tuple[str, str]
) -> list[tuple[str, str]]:
    """(email, name) of everyone ``level`` notifies besides the customer: the deal's own
    ``rep``, and whoever holds its other roles in ``team``."""
    people = []
    for role in level.roles:
        if role == SALES_REP:
            people.append(rep)
        else:
            people += [(p.email, p.name) for p in matrix.people_for(role, team)]
    return people


def customer_letter(
    invoice: Invoice, level: DunningLevel, escalation: Escalation, title: str
) -> OutgoingEmail:
    before_due = escalation.days_overdue <= 0
    subject = (
        f"Reminder: invoice {invoice.number} is due on {invoice.due_date.isoformat()}"
        if before_due
        else f"Payment reminder: invoice {invoice.number} is {escalation.days_overdue} days overdue"
    )
    return OutgoingEmail(
        key=keys.dunning_letter_mail(invoice.number, level.name),
        kind="dunning",
        deal_id=invoice.deal_id,
        to=[invoice.billing_email],
        subject=subject,
        template="payment_reminder",
        context={
            "invoice": escalation,
            "issue_date": invoice.issue_date,
            "amount": invoice.amount,
            "paid": invoice.paid_amount,
            "before_due": before_due,
            "title": title,
        },
    )


def digest(email: str, name: str, items: list[Escalation], batch: int) -> OutgoingEmail:
    levels = sorted({item.level_title for item in items})
    return OutgoingEmail(
        key=keys.dunning_digest_mail(batch, email),
        kind="dunning-escalation",
        deal_id=items[0].deal_id if len({i.deal_id for i in items}) == 1 else None,
        to=[email],
        subject=(
            f"Overdue: {items[0].invoice} ({items[0].customer}), {items[0].level_title}"
            if len(items) == 1
            else f"Overdue: {len(items)} invoices reached {', '.join(levels)}"
        ),
        template="overdue_escalation",
        context={"recipient_name": name, "items": items},
    )
