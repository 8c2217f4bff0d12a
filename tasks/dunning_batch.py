"""One batch of the dunning ladder, in one transaction: the batch's invoices are read
and locked, and each level reached is claimed by inserting its letter row (unique per
invoice and level) together with the timeline entries, the collections holds and the
outbox rows of its emails. Everything is committed together or not at all; the emails
are sent after the commit (``dunning``)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dealflow.finance.days_overdue import DaysOverdue
from dealflow.infra.db import session_scope
from models import keys
from models.finance import DunningLadder, DunningLevel
from models.matrix import Matrix
from models.settings import Settings
from models.tables import (
    CollectionHold,
    Deal,
    DunningLetter,
    Invoice,
    InvoiceStatus,
    SentMessage,
    StageTransition,
)
from tasks.dunning_mail import Escalation, customer_letter, digest, people_told
from tasks.mailer import OutgoingEmail, outbox_values

BATCH_SIZE = 1000


def _insert(session: Session, table: Any) -> Any:
    """INSERT with ON CONFLICT support, for the two databases Dealflow runs on."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


class _Due(NamedTuple):
    """A level due for an invoice of the batch, with what its letters need of the deal."""

    invoice: Invoice
    rank: int
    level: DunningLevel
    days: int  # overdue
    team: str
    rep: tuple[str, str]  # the deal's sales rep: email, name
    title: str  # the deal's


@dataclass
class _Escalated:
    """What the levels claimed in a batch do: the invoices that reached them, the
    customer letters, the digests per person told, the holds, the timeline entries."""

    escalations: list[Escalation] = field(default_factory=list)
    letters: list[OutgoingEmail] = field(default_factory=list)
    digests: dict[tuple[str, str], list[Escalation]] = field(
        default_factory=lambda: defaultdict(list)
    )
    holds: dict[str, Escalation] = field(default_factory=dict)
    timeline: list[dict[str, object]] = field(default_factory=list)


def claim_batch(
    matrix: Matrix,
    days_overdue: DaysOverdue,
    after_id: int,
    now: dt.datetime,
    settings: Settings,
    unknown_teams: set[str],
) -> tuple[int | None, list[Escalation], list[str], list[str]]:
    """Claim the levels due in the next batch; (last id read, escalations, holds placed,
    outbox keys to send). Everything is committed together or not at all."""
    with session_scope() as session:
        rows = _read_batch(session, matrix.dunning, days_overdue, after_id)
        if not rows:
            return None, [], [], []
        last_id = rows[-1][0].id
        wanted = _levels_due(rows, matrix.dunning, days_overdue, unknown_teams)
        if not wanted:
            return last_id, [], [], []
        claimed = _claim_letters(session, wanted, now)
        done = _escalate(matrix, wanted, claimed, now)
        first_letter = min(claimed.values()) if claimed else 0
        mails = done.letters + [
            digest(email, name, items, first_letter)
            for (email, name), items in sorted(done.digests.items())
        ]
        placed = _place_holds(session, done.holds, now)
        _record(session, done.timeline, mails, settings)
    return last_id, done.escalations, placed, [mail.key for mail in mails]


def _read_batch(
    session: Session, ladder: DunningLadder, days_overdue: DaysOverdue, after_id: int
) -> Sequence[Any]:
    """The next batch of collectible invoices after ``after_id`` that may have a level
    due (locked), each with its deal's team, sales rep and title."""
    on_hold = select(CollectionHold.customer_name).where(CollectionHold.cleared_at.is_(None))
    return session.execute(
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


def _levels_due(
    rows: Sequence[Any], ladder: DunningLadder, days_overdue: DaysOverdue, unknown_teams: set[str]
) -> list[_Due]:
    """The highest level due for each invoice, unless it (or a higher one) was sent."""
    wanted = []
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
        wanted.append(_Due(invoice, due[0], due[1], days, team, (rep_email, rep_name), title))
    return wanted


def _claim_letters(session: Session, wanted: list[_Due], now: dt.datetime) -> dict[int, int]:
    """Insert a letter row per invoice and level, unless one is there (another check
    claimed it first); the invoices claimed now, with their letter's id."""
    letters = DunningLetter.__table__
    return {
        invoice_id: letter_id
        for invoice_id, letter_id in session.connection().execute(  # Core, not ORM: one multi-row INSERT ... RETURNING
            _insert(session, letters)
            .on_conflict_do_nothing(index_elements=["invoice_id", "level"])
            .returning(letters.c.invoice_id, letters.c.id),
            [
                {
                    "invoice_id": due.invoice.id,
                    "level": due.level.name,
                    "rank": due.rank,
                    "days_overdue": due.days,
                    "balance": due.invoice.balance,
                    "notified": due.level.notify,
                    "created_at": now,
                }
                for due in wanted
            ],
        )
    }


def _escalate(
    matrix: Matrix, wanted: list[_Due], claimed: dict[int, int], now: dt.datetime
) -> _Escalated:
    """Move each claimed invoice to its level and gather what the level does."""
    done = _Escalated()
    for due in wanted:
        invoice, level = due.invoice, due.level
        if invoice.id not in claimed:
            continue  # another check claimed this level first
        invoice.dunning_rank, invoice.dunning_level, invoice.dunning_at = due.rank, level.name, now
        escalation = Escalation(
            invoice=invoice.number,
            deal_id=invoice.deal_id,
            customer=invoice.customer_name,
            level=level.name,
            level_title=level.label,
            days_overdue=due.days,
            balance=invoice.balance,
            currency=invoice.currency,
            due_date=invoice.due_date,
            hold=level.hold,
        )
        done.escalations.append(escalation)
        if level.tells_customer:
            done.letters.append(customer_letter(invoice, level, escalation, due.title))
        for person in people_told(matrix, level, due.team, due.rep):
            done.digests[person].append(escalation)
        if level.hold:
            done.holds.setdefault(invoice.customer_name, escalation)
        done.timeline.append(
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
    return done


def _record(
    session: Session,
    timeline: list[dict[str, object]],
    mails: list[OutgoingEmail],
    settings: Settings,
) -> None:
    """The batch's timeline entries (once each) and its emails, queued in the outbox."""
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
