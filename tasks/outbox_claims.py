"""Claims on outbox messages: a sender claims messages, commits, talks to SMTP with no
transaction open, then settles each message it sent or failed to send.

A claim is a conditional UPDATE, so two senders never both hold a message. It lasts
``CLAIM_LEASE``: the messages of a sender that died mid-send are free again after it.
A claim names its claimant; when that sender was a flow run's process, the same flow run
recovered in a new process (after a crash or a kill) takes its claims over at once, so a
deal never waits a lease for its own email.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prefect.runtime import flow_run
from sqlalchemy import ColumnElement, Connection, Dialect, and_, case, or_, update

from dealflow.finance.letters import stale_letters
from models.tables import SentMessage

# Far longer than any SMTP conversation (its timeout, twice with a reconnect), so that a
# live sender never loses a message to another one; a sender renews its claim long
# before (see ``Claim.fresh``).
CLAIM_LEASE = dt.timedelta(minutes=10)
CLAIMABLE = ("pending", "retrying")
# What can be sent: an email as composed, or a channel's notice.
COMPOSED = or_(
    SentMessage.message.is_not(None),
    and_(SentMessage.channel.is_not(None), SentMessage.notice.is_not(None)),
)


def claimant() -> str:
    """Who claims: ``<flow run id or ->/<host>:<pid>``."""
    return f"{flow_run.id or '-'}/{socket.gethostname()}:{os.getpid()}"


def _claimable(now: dt.datetime, me: str) -> ColumnElement[bool]:
    run = me.split("/", 1)[0]
    free = or_(
        SentMessage.status.in_(CLAIMABLE),
        and_(SentMessage.status == "sending", SentMessage.claimed_at < now - CLAIM_LEASE),
    )
    if run == "-":
        return free
    # An earlier process of this very flow run is dead: Prefect runs a flow run in one
    # process at a time, and a new one starts only after the old one was lost.
    return or_(
        free,
        and_(
            SentMessage.status == "sending",
            SentMessage.claimed_by.startswith(f"{run}/", autoescape=True),
            SentMessage.claimed_by != me,
        ),
    )


@dataclass(frozen=True)
class Claim:
    """An outbox message claimed for sending at ``claimed_at``: only this claim can
    settle it."""

    key: str
    deal_id: str | None
    to: list[str]
    cc: list[str]
    subject: str
    message: str  # the email as composed; for a channel's notice, its text
    attempts: int  # before this one
    held_back: bool  # an earlier attempt failed
    created_at: dt.datetime
    claimed_at: dt.datetime
    claimed_by: str
    channel: str | None = None  # a notice to post to this Apprise URL, not an email

    def fresh(self, now: dt.datetime) -> bool:
        """Whether the claim is young enough to send under: half its lease is left."""
        return now - self.claimed_at < CLAIM_LEASE / 2


def claim(connection: Connection, keys: Sequence[str], now: dt.datetime) -> list[Claim]:
    """Claim the messages under ``keys`` that nobody holds, in the order of ``keys``; a
    message sent, cancelled, held by a live sender or never composed is left out. The
    caller commits before talking to SMTP (or to a messaging service)."""
    if not keys:
        return []
    me = claimant()
    rows = connection.execute(
        update(SentMessage)
        .where(SentMessage.key.in_(keys), COMPOSED, _claimable(now, me))
        .values(status="sending", claimed_at=now, claimed_by=me)
        .returning(
            SentMessage.key,
            SentMessage.deal_id,
            SentMessage.recipients,
            SentMessage.cc,
            SentMessage.subject,
            SentMessage.message,
            SentMessage.attempts,
            SentMessage.last_error,
            SentMessage.created_at,
            SentMessage.channel,
            SentMessage.notice,
        )
    ).all()
    by_key = {
        key: Claim(
            key,
            deal_id,
            to,
            cc,
            subject,
            str(message if channel is None else notice),  # only composed ones are claimed
            attempts,
            last_error is not None,
            created_at,
            now,
            me,
            channel,
        )
        for (
            key,
            deal_id,
            to,
            cc,
            subject,
            message,
            attempts,
            last_error,
            created_at,
            channel,
            notice,
        ) in rows
    }
    return [by_key[key] for key in keys if key in by_key]


def _held(claimed: Claim) -> ColumnElement[bool]:
    return and_(
        SentMessage.key == claimed.key,
        SentMessage.status == "sending",
        SentMessage.claimed_at == claimed.claimed_at,
        SentMessage.claimed_by == claimed.claimed_by,
    )


def settle(
    connection: Connection, claimed: Claim, failure: Exception | None, now: dt.datetime
) -> None:
    """Record how handing ``claimed`` to SMTP went; the caller commits. A claim that
    outlived its lease and was taken over is left to the sender that took it.

    One statement per email sent, so it goes to the driver as plain SQL: SQLAlchemy's
    work per statement was half its cost.
    """
    stamp = _datetime_to_db(connection.dialect)
    values = {
        "status": "sent" if failure is None else "retrying",
        "sent_at": stamp(now) if failure is None else None,
        "last_error": None if failure is None else f"{type(failure).__name__}: {failure}"[:2000],
        "key": claimed.key,
        "claimed_at": stamp(claimed.claimed_at),
        "claimed_by": claimed.claimed_by,
    }
    connection.exec_driver_sql(_settle_sql(connection.dialect.paramstyle), values)


_SETTLE = (
    "UPDATE sent_messages SET status = {status}, sent_at = {sent_at}, "
    "last_error = {last_error}, attempts = attempts + 1 "
    "WHERE key = {key} AND status = 'sending' AND claimed_at = {claimed_at} "
    "AND claimed_by = {claimed_by}"
)


@functools.cache
def _settle_sql(paramstyle: str) -> str:
    # Both drivers take named parameters: sqlite3 as :name, psycopg as %(name)s.
    marker = "%({})s" if paramstyle == "pyformat" else ":{}"
    names = ("status", "sent_at", "last_error", "key", "claimed_at", "claimed_by")
    return _SETTLE.format(**{name: marker.format(name) for name in names})


@functools.cache
def _datetime_to_db(dialect: Dialect) -> Callable[[dt.datetime], Any]:
    """A datetime as the column stores it on ``dialect`` (as the claim wrote it)."""
    column_type = SentMessage.__table__.c.claimed_at.type
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    return process or (lambda value: value)


def release(connection: Connection, claims: Sequence[Claim]) -> None:
    """Give back claimed messages that were not handed to SMTP, for the next sender at
    once (not after the lease); the caller commits."""
    for claimed in claims:
        connection.execute(
            update(SentMessage)
            .where(_held(claimed))
            .values(
                status=case((SentMessage.last_error.is_(None), "pending"), else_="retrying"),
                claimed_at=None,
                claimed_by=None,
            )
        )


def cancel_stale_letters(connection: Connection, keys: Sequence[str]) -> set[str]:
    """Cancel the customer letters among ``keys`` that are no longer due (the invoice
    was paid, disputed or written off since they were queued); their keys."""
    cancelled = set()
    for key, why in stale_letters(connection, keys).items():
        done = connection.execute(
            update(SentMessage)
            .where(SentMessage.key == key, SentMessage.status.in_(CLAIMABLE))
            .values(status="cancelled", last_error=f"not sent: {why}")
        )
        if done.rowcount:
            cancelled.add(key)
    return cancelled
