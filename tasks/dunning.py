"""The dunning ladder: each collectible invoice reaches the highest level due, once.

Set-based and batched: invoices are read a batch at a time (keyset on id), locked, and
each level reached is claimed by inserting its letter row (unique per invoice and level)
together with the outbox rows of its emails, in one transaction. Only then are the
emails sent, over one SMTP connection. Two checks at once claim each level once; a check
that crashes after the commit leaves its emails queued for the next one.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dealflow.infra.db import session_scope
from models import keys
from models.finance import SALES_REP, DunningLadder, DunningLevel
from models.matrix import Matrix, load_matrix
from models.settings import Settings, get_settings
from models.tables import (
    CollectionHold,
    Deal,
    DunningLetter,
    Invoice,
    InvoiceStatus,
    SentMessage,
    StageTransition,
)
from tasks.effect import effect_task
from tasks.mailer import OutgoingEmail, SmtpSession, outbox_values, send_outbox

BATCH_SIZE = 1000
SHOWN = 200  # escalations listed by name in the report; the rest are counted


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


@dataclass
class DunningSummary:
    by_level: Counter[str] = field(default_factory=Counter)
    shown: list[Escalation] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)
    emails_sent: int = 0
    emails_queued: int = 0
    smtp_connections: int = 0
    unknown_teams: set[str] = field(default_factory=set)  # invoices of these were skipped

    @property
    def escalated(self) -> int:
        return sum(self.by_level.values())

    def add(self, escalations: list[Escalation], holds: list[str]) -> None:
        for escalation in escalations:
            self.by_level[escalation.level] += 1
        self.shown += escalations[: max(0, SHOWN - len(self.shown))]
        self.holds += holds


class _DaysOverdue:
    """Days overdue per team and due date, computed once per pair (there are few)."""

    def __init__(self, matrix: Matrix, ladder: DunningLadder, now: dt.datetime) -> None:
        self.matrix, self.ladder, self.now = matrix, ladder, now
        self._today: dict[str, dt.date] = {}
        self._days: dict[tuple[str, dt.date], int] = {}

    def today(self, team: str) -> dt.date:
        if team not in self._today:
            self._today[team] = self.now.astimezone(self.matrix.calendar(team).zone).date()
        return self._today[team]

    def __call__(self, team: str, due: dt.date) -> int | None:
        """Days ``due`` is overdue on ``team``'s calendar; None for a team the matrix
        does not know (its invoices are listed in the report instead of dunned)."""
        if team not in self.matrix.teams:
            return None
        if (team, due) not in self._days:
            today = self.today(team)
            self._days[(team, due)] = (
                self.matrix.calendar(team).business_days_between(due, today)
                if self.ladder.business_days
                else (today - due).days
            )
        return self._days[(team, due)]

    def latest_due_date(self) -> dt.date:
        """No invoice due after this date can have a level due yet, on any team."""
        first = self.ladder.earliest_days
        latest = dt.date.min
        for team in self.matrix.teams:  # an invoice of an unknown team is read and skipped
            today = self.today(team)
            if self.ladder.business_days:
                # -first business days ahead lie at most this many calendar days ahead
                reach = today + dt.timedelta(days=max(0, -first) * 3 + 7)
            else:
                reach = today - dt.timedelta(days=first)
            latest = max(latest, reach)
        return latest


def _insert(session: Session, table: Any) -> Any:
    """INSERT with ON CONFLICT support, for the two databases Dealflow runs on."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _people(
    matrix: Matrix, level: DunningLevel, team: str, rep: tuple[str, str]
) -> list[tuple[str, str]]:
    people = []
    for role in level.roles:
        if role == SALES_REP:
            people.append(rep)
        else:
            people += [(p.email, p.name) for p in matrix.people_for(role, team)]
    return people


def _claim_batch(
    matrix: Matrix,
    days_overdue: _DaysOverdue,
    after_id: int,
    now: dt.datetime,
    settings: Settings,
    unknown_teams: set[str],
) -> tuple[int | None, list[Escalation], list[str], list[str]]:
    """Claim the levels due in the next batch; (last id read, escalations, holds placed,
    outbox keys to send). Everything is committed together or not at all."""
    ladder = matrix.dunning
    on_hold = select(CollectionHold.customer_name).where(CollectionHold.cleared_at.is_(None))
    with session_scope() as session:
        rows = session.execute(
            select(Invoice, Deal.team, Deal.sales_rep_email, Deal.sales_rep_name, Deal.title)
            .join(Deal, Deal.id == Invoice.deal_id)
            .where(
                Invoice.id > after_id,
                Invoice.status.in_(InvoiceStatus.COLLECTIBLE),
                Invoice.paid_amount < Invoice.amount,
                or_(
                    Invoice.dunning_level.is_(None),
                    Invoice.dunning_level != ladder.levels[-1].name,
                ),
                Invoice.due_date <= days_overdue.latest_due_date(),
                Invoice.customer_name.not_in(on_hold),
            )
            .order_by(Invoice.id)
            .limit(BATCH_SIZE)
            .with_for_update(of=Invoice)
        ).all()
        if not rows:
            return None, [], [], []
        last_id = rows[-1][0].id
        wanted: list[tuple[Invoice, int, DunningLevel, int, str, tuple[str, str], str]] = []
        for invoice, team, rep_email, rep_name, title in rows:
            days = days_overdue(team, invoice.due_date)
            if days is None:
                unknown_teams.add(team)
                continue
            due = ladder.level_due(days)
            if due is None or due[0] <= ladder.rank(invoice.dunning_level):
                continue  # nothing due, or that level (or a higher one) was sent
            if due[1].days < 0 and days_overdue.today(team) > invoice.due_date:
                continue  # a reminder before the due date, once the date has passed: never
            wanted.append((invoice, due[0], due[1], days, team, (rep_email, rep_name), title))
        if not wanted:
            return last_id, [], [], []
        letters = DunningLetter.__table__
        claimed: dict[int, int] = {
            invoice_id: letter_id
            for invoice_id, letter_id in session.connection().execute(  # Core, not ORM: one multi-row INSERT ... RETURNING
                _insert(session, letters)
                .on_conflict_do_nothing(index_elements=["invoice_id", "level"])
                .returning(letters.c.invoice_id, letters.c.id),
                [
                    {
                        "invoice_id": invoice.id,
                        "level": level.name,
                        "rank": rank,
                        "days_overdue": days,
                        "balance": invoice.balance,
                        "notified": level.notify,
                        "created_at": now,
                    }
                    for invoice, rank, level, days, *_ in wanted
                ],
            )
        }
        escalations: list[Escalation] = []
        mails: list[OutgoingEmail] = []
        digests: dict[tuple[str, str], list[Escalation]] = defaultdict(list)
        holds: dict[str, Escalation] = {}
        timeline: list[dict[str, object]] = []
        for invoice, rank, level, days, team, rep, title in wanted:
            if invoice.id not in claimed:
                continue  # another check claimed this level first
            invoice.dunning_rank, invoice.dunning_level, invoice.dunning_at = rank, level.name, now
            escalation = Escalation(
                invoice=invoice.number,
                deal_id=invoice.deal_id,
                customer=invoice.customer_name,
                level=level.name,
                level_title=level.label,
                days_overdue=days,
                balance=invoice.balance,
                currency=invoice.currency,
                due_date=invoice.due_date,
                hold=level.hold,
            )
            escalations.append(escalation)
            if level.tells_customer:
                mails.append(_customer_letter(invoice, level, escalation, title))
            for person in _people(matrix, level, team, rep):
                digests[person].append(escalation)
            if level.hold:
                holds.setdefault(invoice.customer_name, escalation)
            timeline.append(
                {
                    "deal_id": invoice.deal_id,
                    "key": keys.dunning_level(invoice.number, level.name),
                    "stage": "awaiting_payment",
                    "event": f"Dunning: {escalation.describe()}; told " + ", ".join(level.notify),
                    "actor": "payment-check",
                    "comment": "",
                    "at": now,
                }
            )
        first_letter = min(claimed.values()) if claimed else 0
        mails += [
            _digest(email, name, items, first_letter)
            for (email, name), items in sorted(digests.items())
        ]
        placed = _place_holds(session, holds, now)
        if timeline:
            session.connection().execute(
                _insert(session, StageTransition.__table__).on_conflict_do_nothing(
                    index_elements=["deal_id", "key"]
                ),
                timeline,
            )
        if mails:
            session.execute(
                _insert(session, SentMessage.__table__),
                [outbox_values(mail, settings) for mail in mails],
            )
    return last_id, escalations, placed, [mail.key for mail in mails]


def _customer_letter(
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


def _digest(email: str, name: str, items: list[Escalation], batch: int) -> OutgoingEmail:
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


def _place_holds(session: Session, holds: dict[str, Escalation], now: dt.datetime) -> list[str]:
    """Put these customers on hold (a cleared hold is placed again); those placed now.
    A few statements for the whole batch, however many customers it holds."""
    if not holds:
        return []
    reasons = {
        customer: f"{escalation.invoice} reached {escalation.level_title}"
        for customer, escalation in holds.items()
    }
    cleared = session.scalars(
        select(CollectionHold)
        .where(CollectionHold.customer_name.in_(reasons), CollectionHold.cleared_at.is_not(None))
        .with_for_update()
    ).all()
    for hold in cleared:
        hold.reason, hold.placed_at = reasons[hold.customer_name], now
        hold.cleared_at, hold.cleared_by = None, None
    table = CollectionHold.__table__
    placed = [hold.customer_name for hold in cleared]
    placed += (
        session.connection()
        .scalars(
            _insert(session, table)
            .on_conflict_do_nothing(index_elements=["customer_name"])
            .returning(table.c.customer_name),
            [
                {
                    "customer_name": customer,
                    "reason": reason,
                    "placed_by": "payment-check",
                    "placed_at": now,
                }
                for customer, reason in reasons.items()
            ],
        )
        .all()
    )
    return sorted(placed)


@effect_task("apply-dunning-ladder")
def apply_dunning_ladder(now: dt.datetime, settings: Settings | None = None) -> DunningSummary:
    """Bring every collectible invoice to the highest ladder level due at ``now``: claim
    the levels batch by batch, then send the batch's letters over one SMTP connection."""
    settings = settings or get_settings()
    matrix = load_matrix(settings.matrix_path)
    summary = DunningSummary()
    if not matrix.dunning.levels:
        return summary
    days_overdue = _DaysOverdue(matrix, matrix.dunning, now)
    after_id = 0
    with SmtpSession(settings) as smtp:
        while True:
            last_id, escalations, holds, keys = _claim_batch(
                matrix, days_overdue, after_id, now, settings, summary.unknown_teams
            )
            if last_id is None:
                break
            after_id = last_id
            summary.add(escalations, holds)
            summary.emails_queued += len(keys)
            if keys:
                summary.emails_sent += len(send_outbox(keys, settings, smtp))
        summary.smtp_connections = smtp.connections
    return summary
