"""What a dunning level sends: a letter to the customer, and to the people it notifies
one digest per check of the invoices that reached a level."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

from dealflow.infra.rendering import count, translate, translations, when
from models import keys
from models.finance import SALES_REP, DunningLevel
from models.language import ENGLISH
from models.matrix import Matrix
from models.tables import Invoice
from tasks.email_message import OutgoingEmail


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

    @property
    def overdue(self) -> str:
        """How late it is, in words: "8 days overdue", "1 day overdue", or when it is due."""
        if self.days_overdue > 0:
            return f"{count(self.days_overdue, 'day')} overdue"
        return f"due {self.due_date.isoformat()}"

    @property
    def level_words(self) -> str:
        """What the level's title says beyond the days overdue, which are given anyway:
        "" for "7 days overdue", "collections" for "30 days overdue: collections"."""
        return _DAYS_OVERDUE.sub("", self.level_title, count=1)

    def describe(self) -> str:
        words = f"; {self.level_words}" if self.level_words else ""
        return (
            f"{self.invoice} ({self.customer}) is {self.overdue}, "
            f"{self.balance:,.2f} {self.currency} open{words}"
        )


# A level title's leading day count ("7 days overdue", "30 days overdue: ..."): the letters
# say how many days each invoice is overdue, and two different counts side by side confuse.
_DAYS_OVERDUE = re.compile(r"^\s*\d+\s+days?\s+overdue\s*[:;,.-]?\s*", re.IGNORECASE)


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
    invoice: Invoice,
    level: DunningLevel,
    escalation: Escalation,
    title: str,
    contact: str,
    language: str = ENGLISH,
) -> OutgoingEmail:
    """The letter to the deal's billing ``contact`` (their name; "" if the deal has none),
    in the customer's ``language``."""
    before_due = escalation.days_overdue <= 0
    if before_due:
        subject = translate(
            language,
            "Reminder: invoice %(number)s is due on %(due)s",
            number=invoice.number,
            due=when(invoice.due_date, language),
        )
    else:
        overdue = translations(language).ngettext(
            "%(num)s day overdue", "%(num)s days overdue", escalation.days_overdue
        ) % {"num": escalation.days_overdue}
        subject = translate(
            language,
            "Payment reminder: invoice %(number)s is %(overdue)s",
            number=invoice.number,
            overdue=overdue,
        )
    return OutgoingEmail(
        key=keys.dunning_letter_mail(invoice.number, level.name),
        kind="dunning",
        deal_id=invoice.deal_id,
        to=[invoice.billing_email],
        subject=subject,
        language=language,
        template="payment_reminder",
        context={
            "invoice": escalation,
            "issue_date": invoice.issue_date,
            "amount": invoice.amount,
            "paid": invoice.paid_amount,
            "before_due": before_due,
            "title": title,
            "contact": contact,
        },
    )


def digest(email: str, name: str, items: list[Escalation], batch: int) -> OutgoingEmail:
    """One email to ``name`` about the invoices that reached a level naming them."""
    first = items[0]
    if len(items) == 1:
        subject = f"Overdue: {first.invoice} ({first.customer}), {first.overdue}"
    else:
        latest = max(items, key=lambda item: item.days_overdue)
        subject = f"Overdue: {len(items)} invoices" + (
            f", up to {latest.overdue}" if latest.days_overdue > 0 else ""
        )
    if any(item.hold for item in items):
        subject += ", collections hold"
    return OutgoingEmail(
        key=keys.dunning_digest_mail(batch, email),
        kind="dunning-escalation",
        deal_id=items[0].deal_id if len({i.deal_id for i in items}) == 1 else None,
        to=[email],
        subject=subject,
        template="overdue_escalation",
        context={"recipient_name": name, "items": items},
    )
