"""Sending email exactly once per key: queue it in the outbox, claim it, then hand it to
SMTP with no transaction open."""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import time
from collections import deque
from email.message import Message
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dealflow.infra.clock import utcnow
from dealflow.infra.db import bookkeeping_connection, session_scope
from dealflow.infra.records import note_on_timeline
from models.keys import mail_held, mail_sent_late
from models.matrix import Matrix, load_matrix
from models.settings import Settings, get_settings
from models.tables import Deal, SentMessage
from tasks.channels import channel_rows, post
from tasks.effect import is_transient
from tasks.email_message import OutgoingEmail, email_text, message_id_for
from tasks.outbox_claims import COMPOSED, Claim, cancel_stale_letters, claim, release, settle
from tasks.smtp import MESSAGE_REFUSED, SmtpSession, smtp_send


def _queue(mail: OutgoingEmail, text: str, settings: Settings, matrix: Matrix) -> list[str]:
    """Put ``mail`` in the outbox, with a notice for each messaging-app channel of its
    recipients, unless it is there (a concurrent sender may be first); the keys of its
    notices. An email queued before (by a release without channels, too) gets none
    now: a re-executed flow must not post a notice of an email sent long ago."""
    notices: list[dict[str, Any]] = []
    with contextlib.suppress(IntegrityError), session_scope() as session:
        deal = session.get(Deal, mail.deal_id) if mail.deal_id is not None else None
        notices = channel_rows(mail, matrix, deal.team if deal else None, settings)
        row = session.scalar(select(SentMessage).where(SentMessage.key == mail.key))
        if row is None:
            session.add(SentMessage(**outbox_values(mail, settings, text)))
            session.add_all(SentMessage(**notice) for notice in notices)
        elif row.message is None:  # queued by a release that did not keep the message
            row.message = text
    return [notice["key"] for notice in notices]


def deliver(
    mail: OutgoingEmail, settings: Settings | None = None, matrix: Matrix | None = None
) -> bool:
    """Send ``mail`` unless it was sent before under its key; True if sent now.

    The message is queued and claimed in short transactions of their own, and handed
    to SMTP with no transaction open: a slow mail server holds up no writer. A second
    sender of the same key finds it claimed or sent and returns False. A failure is
    recorded on the row (the timeline of a delayed email) and raised for a retry.

    The notices of its recipients' messaging-app channels (``matrix``'s, by default the
    one in force) are posted after it, once each, the same way; one the service does
    not take waits in the outbox for the next sweep (its deal's timeline says so) and
    raises nothing: the email went.
    """
    settings = settings or get_settings()
    matrix = matrix or load_matrix(settings.matrix_path)
    text = email_text(mail, settings)
    notices = _queue(mail, text, settings, matrix)
    sent = False
    failure: Exception | None = None
    held: list[tuple[Claim, Exception]] = []
    with bookkeeping_connection() as connection:
        claims = claim(connection, [mail.key, *notices], utcnow())
        connection.commit()
        for claimed in claims:
            problem: Exception | None = None
            try:
                if claimed.channel is None:
                    smtp_send(text, [*mail.to, *mail.cc], settings)
                else:
                    post(claimed.channel, claimed.subject, claimed.message)
            except Exception as exc:
                problem = exc
            settle(connection, claimed, problem, utcnow())
            connection.commit()
            if claimed.channel is None:
                sent, failure = problem is None, problem
            elif problem is not None:
                held.append((claimed, problem))
    for claimed, problem in held:
        _note_notice_held(claimed, problem)
    if failure is not None:
        raise failure
    return sent


def _note_notice_held(claimed: Claim, problem: Exception) -> None:
    if claimed.deal_id is None:
        return
    note_on_timeline(
        claimed.deal_id,
        mail_held(claimed.key),
        f"Notice to {', '.join(claimed.to)} in their messaging app held back: "
        f"{type(problem).__name__}: {problem}"[:500]
        + f"; it goes out with the next sweep ({claimed.subject})",
    )


# Short outages pass within the task; longer ones leave the email to the outbox.
OUTAGE_RETRY_SECONDS = (1.0, 3.0)


def deliver_or_queue(
    mail: OutgoingEmail, settings: Settings | None = None, matrix: Matrix | None = None
) -> bool:
    """Like ``deliver``, but a mail server that stays unavailable does not stop the deal:
    after a few quick tries the email stays queued in the outbox (the next sla-sweep or
    payment check sends it, once) and the delay goes on the deal's timeline. True if
    sent now; refusals of the message itself (5xx) still raise."""
    failure: Exception | None = None
    for pause in (*OUTAGE_RETRY_SECONDS, None):
        try:
            return deliver(mail, settings, matrix)
        except Exception as exc:
            if not is_transient(exc):
                raise
            failure = exc
        if pause is not None:
            time.sleep(pause)
    if mail.deal_id is not None:
        note_on_timeline(
            mail.deal_id,
            mail_held(mail.key),
            f"Email to {', '.join(mail.to)} held back: the mail server is unavailable "
            f"({type(failure).__name__}); it goes out with the next sweep ({mail.subject})",
        )
    return False


def outbox_values(
    mail: OutgoingEmail, settings: Settings, text: str | None = None
) -> dict[str, Any]:
    """The outbox row of ``mail``, composed and ready to queue (sent later by
    ``send_outbox``, once), as column values: a batch's rows go in one executemany INSERT
    (ORM objects would be inserted one by one on SQLite)."""
    return {
        "key": mail.key,
        "deal_id": mail.deal_id,
        "kind": mail.kind,
        "recipients": list(mail.to),
        "cc": list(mail.cc),
        "subject": mail.subject,
        "message_id": message_id_for(mail.key, settings),
        "status": "pending",
        "attempts": 0,
        "message": text or email_text(mail, settings),
        "created_at": utcnow(),
    }


def _unsent_keys(notices_only: bool = False) -> list[str]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(SentMessage.key)
                .where(
                    SentMessage.status.not_in(("sent", "cancelled")),
                    SentMessage.channel.is_not(None) if notices_only else COMPOSED,
                )
                .order_by(SentMessage.id)
            )
        )


CLAIM_GROUP = 100  # messages claimed at a time: one UPDATE, then one per message sent


def send_outbox(
    keys: list[str] | None = None,
    settings: Settings | None = None,
    smtp: SmtpSession | None = None,
    now: dt.datetime | None = None,
) -> list[str]:
    """Send the queued emails named by ``keys`` (all unsent ones if None), over one SMTP
    connection, and post the channel notices among them; the keys sent now.

    Messages are claimed a group at a time and the claim committed before any goes to
    SMTP; each is marked sent as soon as the server took it. No transaction is open
    while the mail server is talked to, two senders send a message once, and a crash
    repeats at most the one email in flight (after its claim's lease, with the same
    Message-ID). A row that fails keeps its error and is tried again by the next sweep
    or check. A notice the messaging service does not take is marked so and waits
    for the next run the same way; the mail server being down stops no notice.
    ``now`` moves the clock the claims are judged by (tests).
    """
    settings = settings or get_settings()
    waiting = deque(_unsent_keys() if keys is None else keys)
    sent: list[str] = []
    late: list[tuple[Claim, dt.datetime]] = []
    if not waiting:
        return sent
    with contextlib.ExitStack() as stack:
        connection = smtp or stack.enter_context(SmtpSession(settings))
        try:
            # Connected before anything is claimed: with the server down, no email is.
            connection.open()
        except Exception:
            # The emails keep their state, the next run tries again; the notices go.
            notices = set(_unsent_keys(notices_only=True))
            waiting = deque(key for key in waiting if key in notices)
            if not waiting:
                return sent
        database = stack.enter_context(bookkeeping_connection())

        def mark(claimed: Claim, failure: Exception | None, moment: dt.datetime) -> None:
            settle(database, claimed, failure, moment)
            database.commit()  # before the next email goes: a crash repeats only one

        while waiting:
            group = [waiting.popleft() for _ in range(min(CLAIM_GROUP, len(waiting)))]
            cancelled = cancel_stale_letters(database, group)
            claims = claim(
                database, [key for key in group if key not in cancelled], now or utcnow()
            )
            database.commit()
            for position, claimed in enumerate(claims):
                moment = now or utcnow()
                if not claimed.fresh(moment):  # a slow server: claim the rest anew
                    release(database, claims[position:])
                    database.commit()
                    waiting.extendleft(reversed([c.key for c in claims[position:]]))
                    break
                if claimed.channel is not None:
                    try:
                        post(claimed.channel, claimed.subject, claimed.message)
                    except Exception as exc:
                        mark(claimed, exc, moment)
                        continue  # this service is down, or the URL wrong: not the others
                    mark(claimed, None, moment)
                    sent.append(claimed.key)
                    if claimed.held_back:
                        late.append((claimed, moment))
                    continue
                try:
                    connection.send(_as_sent(claimed.message), [*claimed.to, *claimed.cc])
                except Exception as exc:
                    mark(claimed, exc, moment)
                    if isinstance(exc, MESSAGE_REFUSED):
                        continue
                    # The server is down: the rest wait for the next run.
                    release(database, claims[position + 1 :])
                    database.commit()
                    waiting.clear()
                    break
                mark(claimed, None, moment)
                sent.append(claimed.key)
                if claimed.held_back:
                    late.append((claimed, moment))
    for claimed, moment in late:
        _note_sent_late(claimed, moment)
    return sent


def _as_sent(stored: str) -> str | Message:
    # Stored ASCII text goes out as it is: parsing it back into a message cost more than
    # composing it. Only a previous release stored anything else.
    if stored.isascii():
        return stored
    return email.message_from_string(stored, policy=email.policy.default)


def _note_sent_late(claimed: Claim, moment: dt.datetime) -> None:
    if claimed.deal_id is None:
        return
    delay = int((moment - claimed.created_at).total_seconds() // 60)
    what = "Email" if claimed.channel is None else "Messaging-app notice"
    note_on_timeline(
        claimed.deal_id,
        mail_sent_late(claimed.key),
        f"{what} to {', '.join(claimed.to)} sent {delay} min late, after "
        f"{claimed.attempts + 1} attempts ({claimed.subject})",
    )


def resend_failed(settings: Settings | None = None, now: dt.datetime | None = None) -> list[str]:
    """Send again every email whose send failed (kept as composed); the keys now sent.

    Nothing is lost when SMTP was down after the effect was recorded: the next sweep
    sends it, once, claimed like any other sender's. So is the email of a sender that
    crashed mid-send, once its claim's lease is over.
    """
    return send_outbox(None, settings, now=now)
