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
from dealflow.infra.db import get_engine, session_scope
from models import keys
from models.finance import DunningLadder, DunningLevel
from models.language import ENGLISH
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
from tasks.channels import channel_rows
from tasks.dunning_mail import Escalation, customer_letter, digest, people_told
from tasks.email_message import OutgoingEmail
from tasks.mailer import outbox_values

BATCH_SIZE = 1000
# The letters greet the billing contact by name: read from the deal's stored intake.
BILLING_CONTACT_NAME = Deal.payload["customer"]["billing_contact"]["name"].as_string()
# ... in the customer's language, if the deal gives one (else the team's).
CUSTOMER_LANGUAGE = Deal.payload["customer"]["language"].as_string()


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
    contact: str  # the name of the deal's billing contact, "" if it has none
    language: str | None  # the customer's, if the deal gives one


@dataclass
class Escalated:
    """What the levels claimed in a batch do: the invoices that reached them, the
    customer letters, the digests per person told, the holds, the timeline entries."""

    escalations: list[Escalation] = field(default_factory=list)
    letters: list[OutgoingEmail] = field(default_factory=list)
    digests: dict[tuple[str, str], list[Escalation]] = field(
        default_factory=lambda: defaultdict(list)
    )
    holds: dict[str, Escalation] = field(default_factory=dict)
    timeline: list[dict[str, object]] = field(default_factory=list)
    # The language of each person told on the deals of their digest (matrix.language_of).
    languages: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))

    def reader_language(self, matrix: Matrix, email: str, name: str) -> str:
        """The language of the digest to ``email``: theirs on its deals if those agree,
        else theirs beyond one deal (``matrix.reader_language``), else English."""
        languages = self.languages[(email, name)]
        if len(languages) == 1:
            return next(iter(languages))
        person = next((p for p in matrix.people if p.email.lower() == email.lower()), None)
        return matrix.reader_language(person) if person is not None else ENGLISH


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
        # The levels not claimed now were claimed first by another check.
        wanted = [due for due in wanted if due.invoice.id in claimed]
        for due in wanted:
            due.invoice.dunning_rank, due.invoice.dunning_level = due.rank, due.level.name
            due.invoice.dunning_at = now
        done = _escalate(matrix, wanted, now)
        first_letter = min(claimed.values()) if claimed else 0
        mails = done.letters + [
            digest(email, name, items, first_letter, done.reader_language(matrix, email, name))
            for (email, name), items in sorted(done.digests.items())
        ]
        placed = _place_holds(session, done.holds, now)
        team_of = {due.invoice.deal_id: due.team for due in wanted}
        notices = [
            notice
            for mail in mails
            for notice in channel_rows(
                mail, matrix, team_of.get(mail.deal_id) if mail.deal_id else None, settings
            )
        ]
        _record(session, done.timeline, mails, notices, settings)
    return (
        last_id,
        done.escalations,
        placed,
        [mail.key for mail in mails] + [notice["key"] for notice in notices],
    )


def preview_batch(
    matrix: Matrix,
    days_overdue: DaysOverdue,
    after_id: int,
    unknown_teams: set[str],
    held: set[str],
) -> tuple[int | None, Escalated]:
    """What ``claim_batch`` would do with the next batch at ``days_overdue.now``, read
    only: nothing is written, locked or sent. (last id read, what the levels due would
    do). ``held``: customers an earlier batch of the same preview would put on hold,
    whose invoices the real check would then leave alone."""
    with Session(get_engine()) as session:  # closed without a commit
        rows = _read_batch(session, matrix.dunning, days_overdue, after_id, lock=False)
        if not rows:
            return None, Escalated()
        last_id = rows[-1][0].id
        rows = [row for row in rows if row[0].customer_name not in held]
        wanted = _levels_due(rows, matrix.dunning, days_overdue, unknown_teams)
        return last_id, _escalate(matrix, wanted, days_overdue.now)


def _read_batch(
    session: Session,
    ladder: DunningLadder,
    days_overdue: DaysOverdue,
    after_id: int,
    lock: bool = True,
) -> Sequence[Any]:
    """The next batch of collectible invoices after ``after_id`` that may have a level
    due (locked, unless ``lock`` is off), each with its deal's team, sales rep, title
    and billing contact's name."""
    on_hold = select(CollectionHold.customer_name).where(CollectionHold.cleared_at.is_(None))
    query = (
        select(
            Invoice,
            Deal.team,
            Deal.sales_rep_email,
            Deal.sales_rep_name,
            Deal.title,
            BILLING_CONTACT_NAME,
            CUSTOMER_LANGUAGE,
        )
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
    )
    return session.execute(query.with_for_update(of=Invoice) if lock else query).all()


def _levels_due(
    rows: Sequence[Any], ladder: DunningLadder, days_overdue: DaysOverdue, unknown_teams: set[str]
) -> list[_Due]:
    """The highest level due for each invoice, unless it (or a higher one) was sent."""
    wanted = []
    for invoice, team, rep_email, rep_name, title, contact, language in rows:
        days = days_overdue(team, invoice.due_date)
        if days is None:
            unknown_teams.add(team)
            continue
        due = ladder.level_due(days)
        if due is None or due[0] <= ladder.rank(invoice.dunning_level):
            continue  # nothing due, or that level (or a higher one) was sent
        if due[1].days < 0 and days_overdue.today(team) > invoice.due_date:
            continue  # a reminder before the due date, once the date has passed: never
        wanted.append(
            _Due(
                invoice,
                due[0],
                due[1],
                days,
                team,
                (rep_email, rep_name),
                title,
                contact or "",
                language,
            )
        )
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


def _escalate(matrix: Matrix, wanted: list[_Due], now: dt.datetime) -> Escalated:
    """What reaching its level does for each invoice (changes nothing itself)."""
    done = Escalated()
    for due in wanted:
        invoice, level = due.invoice, due.level
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
            level_titles=tuple(sorted(level.titles.items())),
        )
        done.escalations.append(escalation)
        if level.tells_customer:
            language = due.language or matrix.team_language(due.team)
            done.letters.append(
                customer_letter(invoice, level, escalation, due.title, due.contact, language)
            )
        for person in people_told(matrix, level, due.team, due.rep):
            done.digests[person].append(escalation)
            done.languages[person].add(matrix.language_of(person[0], due.team))
        if level.hold:
            done.holds.setdefault(invoice.customer_name, escalation)
        done.timeline.append(
            {
                "deal_id": invoice.deal_id,
                "key": keys.dunning_level(invoice.number, level.name),
                "stage": "awaiting_payment",
                "event": f'Dunning level "{level.label}" reached: {escalation.describe()}; told '
                + ", ".join(level.notify),
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
    notices: list[dict[str, Any]],
    settings: Settings,
) -> None:
    """The batch's timeline entries (once each) and its emails, queued in the outbox with
    their recipients' channel notices (``tasks/channels.py``)."""
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
    if notices:
        session.execute(_insert(session, SentMessage.__table__), notices)


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
