"""What a dunning level sends: a letter to the customer, and to the people it notifies
one digest per check of the invoices that reached a level."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

from dealflow.infra.rendering import count, money, translate, translations, when
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
    # The level's title in other languages, as the matrix gives them: (language, title).
    level_titles: tuple[tuple[str, str], ...] = ()

    @property
    def overdue(self) -> str:
        """How late it is, in words: "8 days overdue", "1 day overdue", or when it is due."""
        if self.days_overdue > 0:
            return f"{count(self.days_overdue, 'day')} overdue"
        return f"due {self.due_date.isoformat()}"

    def overdue_in(self, language: str) -> str:
        """``overdue`` as readers of ``language`` read it ("逾期 8 天")."""
        if language == ENGLISH:
            return self.overdue
        if self.days_overdue > 0:
            return translations(language).ngettext(
                "%(num)s day overdue", "%(num)s days overdue", self.days_overdue
            ) % {"num": self.days_overdue}
        return translate(language, "due %(date)s", date=when(self.due_date, language))

    def level_title_in(self, language: str) -> str:
        """The level's title in ``language`` if the matrix gives one, else the English one."""
        return dict(self.level_titles).get(language, self.level_title)

    @property
    def level_words(self) -> str:
        """What the level's title says beyond the days overdue, which are given anyway:
        "" for "7 days overdue", "collections" for "30 days overdue: collections"."""
        return _DAYS_OVERDUE.sub("", self.level_title, count=1)

    def level_words_in(self, language: str) -> str:
        """``level_words`` in ``language``: "催收" for "逾期 30 天：催收"."""
        title = self.level_title_in(language)
        return (
            _DAYS_OVERDUE.sub("", title, count=1) if title != self.level_title else self.level_words
        )

    def describe(self, language: str = ENGLISH) -> str:
        """One line about it: "INV-1 (Acme) is 8 days overdue, 12,345.60 EUR open"."""
        words = self.level_words_in(language)
        line = translate(
            language,
            "%(invoice)s (%(customer)s) is %(overdue)s, %(balance)s open",
            invoice=self.invoice,
            customer=self.customer,
            overdue=self.overdue_in(language),
            balance=money(self.balance, self.currency, language),
        )
        return translate(language, "%(line)s; %(words)s", line=line, words=words) if words else line


# A level title's leading day count ("7 days overdue", "30 days overdue: ...", "逾期 30 天："):
# the letters say how many days each invoice is overdue, and two different counts side by
# side confuse.
_DAYS_OVERDUE = re.compile(
    r"^\s*(?:\d+\s+days?\s+overdue|逾期\s*\d+\s*(?:个工作日|天|日))\s*[:;,.\-：；，。、]?\s*",
    re.IGNORECASE,
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


def digest(
    email: str, name: str, items: list[Escalation], batch: int, language: str = ENGLISH
) -> OutgoingEmail:
    """One email to ``name`` about the invoices that reached a level naming them, in
    their ``language``."""
    first = items[0]
    if len(items) == 1:
        subject = translate(
            language,
            "Overdue: %(invoice)s (%(customer)s), %(overdue)s",
            invoice=first.invoice,
            customer=first.customer,
            overdue=first.overdue_in(language),
        )
    else:
        latest = max(items, key=lambda item: item.days_overdue)
        if latest.days_overdue > 0:
            subject = translate(
                language,
                "Overdue: %(count)s invoices, up to %(overdue)s",
                count=len(items),
                overdue=latest.overdue_in(language),
            )
        else:
            subject = translate(language, "Overdue: %(count)s invoices", count=len(items))
    if any(item.hold for item in items):
        subject = translate(language, "%(subject)s, collections hold", subject=subject)
    return OutgoingEmail(
        key=keys.dunning_digest_mail(batch, email),
        kind="dunning-escalation",
        deal_id=items[0].deal_id if len({i.deal_id for i in items}) == 1 else None,
        to=[email],
        subject=subject,
        template="overdue_escalation",
        context={"recipient_name": name, "items": items},
        language=language,
    )
