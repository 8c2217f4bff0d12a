"""Dealflow's own records: the system of record for deals and every effect on them.

Each outward effect has a row with a unique key, claimed before the effect, so a flow
that Prefect re-executes from the top finds the row and does not repeat the effect.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    or_,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stored as UTC on every backend; always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class Deal(Base):
    __tablename__ = "deals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    team: Mapped[str] = mapped_column(String(50), index=True)
    customer_name: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    sales_rep_email: Mapped[str] = mapped_column(String(320))
    sales_rep_name: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]]
    payload_hash: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(40), index=True)
    waiting_on: Mapped[str | None] = mapped_column(String(320))
    waiting_on_name: Mapped[str | None] = mapped_column(String(200))
    waiting_since: Mapped[dt.datetime | None]
    grade: Mapped[str | None] = mapped_column(String(1))  # A/B/C from lead screening
    outcome: Mapped[str | None] = mapped_column(String(40))
    outcome_reason: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[str | None] = mapped_column(String(36))
    matrix_version: Mapped[str | None] = mapped_column(String(80))
    # 1 as first submitted; a rejected deal revised and submitted again is the next. The
    # row holds the current revision; the earlier ones are in ``deal_revisions``.
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class DealRevision(Base):
    """An earlier revision of a deal, kept as it was when the next one replaced it: its
    content, its run and how it ended (rejected, with the reason)."""

    __tablename__ = "deal_revisions"
    __table_args__ = (UniqueConstraint("deal_id", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id"), index=True)
    revision: Mapped[int]
    payload: Mapped[dict[str, Any]]
    payload_hash: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    flow_run_id: Mapped[str | None] = mapped_column(String(36))
    outcome: Mapped[str | None] = mapped_column(String(40))
    outcome_reason: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[dt.datetime]
    replaced_at: Mapped[dt.datetime]


class StageTransition(Base):
    """The audit trail: one row per thing that happened to a deal, keyed for idempotence."""

    __tablename__ = "stage_transitions"
    __table_args__ = (UniqueConstraint("deal_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id"), index=True)
    key: Mapped[str] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(40))
    event: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(320))
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime]


class Approval(Base):
    """One gate of one revision of a deal: who was asked, when, to whom it escalated, and
    what was decided (once)."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("deal_id", "revision", "gate"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id"), index=True)
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    gate: Mapped[str] = mapped_column(String(40))
    position: Mapped[int]
    role: Mapped[str] = mapped_column(String(40))
    assignee_email: Mapped[str] = mapped_column(String(320))
    assignee_name: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[dt.datetime | None]
    escalated_to: Mapped[str | None] = mapped_column(String(320))
    escalated_to_name: Mapped[str | None] = mapped_column(String(200))
    escalated_at: Mapped[dt.datetime | None]
    decision: Mapped[str | None] = mapped_column(String(20))
    decided_by: Mapped[str | None] = mapped_column(String(320))
    decided_by_name: Mapped[str | None] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[dt.datetime | None]

    def may_decide(self, email: str) -> bool:
        return email.lower() in {
            self.assignee_email.lower(),
            (self.escalated_to or "").lower(),
        }

    def name_of(self, email: str) -> str:
        if self.escalated_to and email.lower() == self.escalated_to.lower():
            return self.escalated_to_name or email
        return self.assignee_name if email.lower() == self.assignee_email.lower() else email

    @property
    def current_assignee(self) -> tuple[str, str]:
        if self.escalated_to:
            return self.escalated_to, self.escalated_to_name or self.escalated_to
        return self.assignee_email, self.assignee_name


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("deal_id", "sequence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id"), index=True)
    number: Mapped[str] = mapped_column(String(80), unique=True)
    sequence: Mapped[int]
    label: Mapped[str] = mapped_column(String(100))
    milestone: Mapped[str] = mapped_column(String(20))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    issue_date: Mapped[dt.date]
    due_date: Mapped[dt.date]
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    billing_email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[dt.datetime]
    # Denormalised from the deal so that the payment check filters in one query.
    customer_name: Mapped[str] = mapped_column(String(200), index=True, default="")
    paid_amount: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal(0))
    paid_at: Mapped[dt.datetime | None]
    dunning_level: Mapped[str | None] = mapped_column(String(40))  # highest level sent
    dunning_rank: Mapped[int] = mapped_column(Integer, default=0)  # its place in the ladder
    dunning_at: Mapped[dt.datetime | None]
    dispute_reason: Mapped[str | None] = mapped_column(Text)

    @property
    def balance(self) -> Decimal:
        return self.amount - self.paid_amount


class DealOutcome:
    """A deal's ``outcome``: None while it is before its contract or in approval."""

    HANDED_OFF = "handed_off"  # won and handed to delivery: open until it is paid
    PAID = "paid"
    REJECTED = "rejected"
    LOST = "lost"
    # Outcomes after which nothing more happens to the deal.
    FINAL = (PAID, REJECTED, LOST)


def open_deal() -> ColumnElement[bool]:
    """SQL: the deal is still on its way: before its contract, in approval, or handed
    off and waiting for the customer's acceptance or payment."""
    return or_(Deal.outcome.is_(None), Deal.outcome.not_in(DealOutcome.FINAL))


class InvoiceStatus:
    OPEN = "open"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    DISPUTED = "disputed"
    WRITTEN_OFF = "written_off"
    # Invoices that still have money to come in, and may be chased.
    COLLECTIBLE = (OPEN, PARTIALLY_PAID)
    SETTLED = (PAID, WRITTEN_OFF)


class Payment(Base):
    """Money received against one invoice. ``key`` makes a payment apply once: a bank
    line's fingerprint, or the reference finance typed."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    applied: Mapped[Decimal] = mapped_column(Numeric(14, 2))  # to the invoice's balance
    excess: Mapped[Decimal] = mapped_column(Numeric(14, 2))  # overpaid: a credit to return
    currency: Mapped[str] = mapped_column(String(3))
    received_on: Mapped[dt.date]
    reference: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(40))  # cli, web, bank statement file name
    recorded_by: Mapped[str] = mapped_column(String(320))
    recorded_at: Mapped[dt.datetime]


class DunningLetter(Base):
    """One level of the dunning ladder reached by one invoice: claimed once, ever."""

    __tablename__ = "dunning_letters"
    __table_args__ = (UniqueConstraint("invoice_id", "level"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    level: Mapped[str] = mapped_column(String(40))
    rank: Mapped[int]
    days_overdue: Mapped[int]
    balance: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    notified: Mapped[list[str]]
    created_at: Mapped[dt.datetime]


class CollectionHold(Base):
    """A customer whose invoices are out of the ladder until the hold is cleared."""

    __tablename__ = "collection_holds"

    customer_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(String(320))
    placed_at: Mapped[dt.datetime]
    cleared_at: Mapped[dt.datetime | None]
    cleared_by: Mapped[str | None] = mapped_column(String(320))


class SentMessage(Base):
    """The outbox: an email is claimed here under its key before it is handed to SMTP.

    ``status``: pending (queued), sending (claimed by ``claimed_by`` since ``claimed_at``), sent,
    retrying (the last send failed: ``last_error``) or cancelled (a letter no longer due).

    A row with a ``channel`` is no email but the notice an email's recipient also gets in
    a messaging app (``<email key>:channel``): ``subject`` is its title, ``notice`` its
    text, and ``message`` stays NULL, so that a sender of a previous release, which
    claims only composed emails, never takes it.
    """

    __tablename__ = "sent_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    deal_id: Mapped[str | None] = mapped_column(ForeignKey("deals.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    recipients: Mapped[list[str]]
    cc: Mapped[list[str]]
    subject: Mapped[str] = mapped_column(String(300))
    message_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)  # as composed: what a resend sends
    created_at: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]
    claimed_at: Mapped[dt.datetime | None]
    # "<flow run id or ->/<host>:<pid>": the same flow run, recovered in a new process,
    # takes over its own claims at once instead of after the lease.
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    # The Apprise URL as the matrix names it (${NAME} references unresolved: no secret).
    channel: Mapped[str | None] = mapped_column(Text)
    notice: Mapped[str | None] = mapped_column(Text)
