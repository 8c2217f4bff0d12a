"""Sending email exactly once per key: claim the key in the outbox, then hand it to SMTP."""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import smtplib
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import yagmail
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dealflow.finance.letters import letter_stale
from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.records import note_on_timeline
from dealflow.infra.rendering import render
from models.keys import mail_held, mail_sent_late
from models.settings import Settings, get_settings
from models.tables import SentMessage
from tasks.effect import is_transient


@dataclass(frozen=True)
class OutgoingEmail:
    key: str  # unique per effect, e.g. "deal/ACME-1/gate/manager/request"
    kind: str
    deal_id: str | None
    to: list[str]
    subject: str
    template: str  # templates/email/<template>.txt and .html
    context: dict[str, object]
    cc: list[str] = field(default_factory=list)
    # PNG images shown inline in the HTML part, by content id (``<img src="cid:name">``).
    images: dict[str, bytes] = field(default_factory=dict)


def message_id_for(key: str, settings: Settings) -> str:
    # Derived from the key, so a resend after a crash between "sent" and "recorded"
    # carries the same Message-ID and mail clients show it once.
    domain = settings.mail_from.rpartition("@")[2].strip("> ") or "dealflow.local"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"


def compose(mail: OutgoingEmail, settings: Settings) -> EmailMessage:
    context = {**mail.context, "subject": mail.subject}
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = ", ".join(mail.to)
    if mail.cc:
        message["Cc"] = ", ".join(mail.cc)
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id_for(mail.key, settings)
    message["X-Dealflow-Key"] = mail.key
    message.set_content(render(f"email/{mail.template}.txt", **context))
    message.add_alternative(render(f"email/{mail.template}.html", **context), subtype="html")
    if mail.images:
        html_part = message.get_body(("html",))
        assert isinstance(html_part, EmailMessage)
        for name, png in mail.images.items():
            html_part.add_related(png, maintype="image", subtype="png", cid=f"<{name}>")
    return message


# Refusals of one message; any other error means the server itself is unavailable.
MESSAGE_REFUSED = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError)


class SmtpSession:
    """One SMTP connection for many messages, opened on the first send.

    A batch of dunning letters goes over one connection instead of one per message;
    ``connections`` counts how many were opened (a dropped one is reopened once).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connections = 0
        self._client: yagmail.SMTP | None = None

    def _connect(self) -> yagmail.SMTP:
        settings = self.settings
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        login = settings.smtp_user or settings.mail_from
        client = yagmail.SMTP(
            # As {login: alias}: yagmail appends "@gmail.com" to a plain user name.
            user={login: login},
            password=password,
            host=settings.smtp_host,
            port=settings.smtp_port,
            smtp_ssl=settings.smtp_tls == "ssl",
            smtp_starttls=settings.smtp_tls == "starttls",
            smtp_skip_login=settings.smtp_user is None,
            soft_email_validation=False,
            timeout=settings.smtp_timeout_seconds,
        )
        # yagmail opens, secures and authenticates the connection; messages are built with
        # the standard library because yagmail cannot send a separate text part.
        client.login()
        self.connections += 1
        return client

    def open(self) -> None:
        """Connect now (outside any transaction); raises if the server is not there."""
        if self._client is None:
            self._client = self._connect()

    def send(self, message: EmailMessage | str, recipients: list[str]) -> None:
        """Send ``message``: composed, or as stored in the outbox (ASCII text, sent as is)."""
        fresh = self._client is None
        if self._client is None:
            self._client = self._connect()
        try:
            if isinstance(message, str):
                self._client.smtp.sendmail(self.settings.mail_from, recipients, message)
            else:
                self._client.smtp.send_message(
                    message, from_addr=self.settings.mail_from, to_addrs=recipients
                )
        except smtplib.SMTPServerDisconnected:
            self.close()
            if fresh:
                raise
            self.send(message, recipients)  # the server dropped an idle connection
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        # The server has every message sent: a failure to say goodbye is not a failure.
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    def __enter__(self) -> SmtpSession:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def smtp_send(message: EmailMessage, recipients: list[str], settings: Settings) -> None:
    with SmtpSession(settings) as smtp:
        smtp.send(message, recipients)


def _claimed_row(session: Session, mail: OutgoingEmail, settings: Settings) -> SentMessage:
    """The outbox row for ``mail``, locked until the transaction ends (created if new)."""
    row = session.scalar(select(SentMessage).where(SentMessage.key == mail.key).with_for_update())
    if row is None:
        row = SentMessage(
            key=mail.key,
            deal_id=mail.deal_id,
            kind=mail.kind,
            recipients=list(mail.to),
            cc=list(mail.cc),
            subject=mail.subject,
            message_id=message_id_for(mail.key, settings),
            status="pending",
            attempts=0,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()  # a concurrent sender of the same key waits here, then conflicts
    return row


def deliver(mail: OutgoingEmail, settings: Settings | None = None) -> bool:
    """Send ``mail`` unless it was sent before under its key; True if sent now.

    The row is claimed and the message handed to SMTP in one transaction, so a second
    sender of the same key waits for the first and then finds it sent. A failure is
    recorded on the row (the timeline of a delayed email) and raised for a retry.
    """
    settings = settings or get_settings()
    message = compose(mail, settings)
    for _attempt in range(3):
        failure: Exception | None = None
        try:
            with session_scope() as session:
                row = _claimed_row(session, mail, settings)
                if row.status == "sent":
                    return False
                row.attempts += 1
                row.message = message.as_string()
                try:
                    smtp_send(message, [*mail.to, *mail.cc], settings)
                except Exception as exc:
                    failure = exc
                    row.status = "retrying"
                    row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                else:
                    row.status, row.sent_at, row.last_error = "sent", utcnow(), None
        except IntegrityError:
            continue  # another sender created the row first: look again
        if failure is not None:
            raise failure
        return True
    raise RuntimeError(f"could not claim outbox key {mail.key}")


# Short outages pass within the task; longer ones leave the email to the outbox.
OUTAGE_RETRY_SECONDS = (1.0, 3.0)


def deliver_or_queue(mail: OutgoingEmail, settings: Settings | None = None) -> bool:
    """Like ``deliver``, but a mail server that stays unavailable does not stop the deal:
    after a few quick tries the email stays queued in the outbox (the next sla-sweep or
    payment check sends it, once) and the delay goes on the deal's timeline. True if
    sent now; refusals of the message itself (5xx) still raise."""
    failure: Exception | None = None
    for pause in (*OUTAGE_RETRY_SECONDS, None):
        try:
            return deliver(mail, settings)
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


def outbox_values(mail: OutgoingEmail, settings: Settings) -> dict[str, Any]:
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
        "message": compose(mail, settings).as_string(),
        "created_at": utcnow(),
    }


def send_outbox(
    keys: list[str] | None = None, settings: Settings | None = None, smtp: SmtpSession | None = None
) -> list[str]:
    """Send the queued emails named by ``keys`` (all unsent ones if None), over one SMTP
    connection; the keys sent now.

    Each row is locked while it is sent and marked sent in the same transaction, so two
    senders of one row (two checks, or a check and a sweep) send it once, and a crash
    repeats at most the one email in flight. A row that fails keeps its error and is
    tried again by the next sweep or check.
    """
    settings = settings or get_settings()
    if keys is None:
        with session_scope() as session:
            keys = list(
                session.scalars(
                    select(SentMessage.key)
                    .where(
                        SentMessage.status.not_in(("sent", "cancelled")),
                        SentMessage.message.is_not(None),
                    )
                    .order_by(SentMessage.id)
                )
            )
    sent: list[str] = []
    if not keys:
        return sent
    with contextlib.ExitStack() as stack:
        connection = smtp or stack.enter_context(SmtpSession(settings))
        try:
            # Connected before any row is locked: with the server down, nothing waits on it.
            connection.open()
        except Exception:
            return sent  # the rows keep their state; the next run tries again
        for key in keys:
            with session_scope() as session:
                row = session.scalar(
                    select(SentMessage).where(SentMessage.key == key).with_for_update()
                )
                if row is None or row.status in {"sent", "cancelled"} or row.message is None:
                    continue
                stale = letter_stale(session, row)
                if stale is not None:
                    row.status, row.last_error = "cancelled", f"not sent: {stale}"
                    continue
                row.attempts += 1
                # Stored ASCII text goes out as it is: parsing it back into a message
                # cost more than composing it.
                message = (
                    row.message
                    if row.message.isascii()
                    else email.message_from_string(row.message, policy=email.policy.default)
                )
                try:
                    connection.send(message, [*row.recipients, *row.cc])
                except Exception as exc:
                    row.status = "retrying"
                    row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                    if isinstance(exc, MESSAGE_REFUSED):
                        continue
                    break  # the server is down: the rest wait for the next run
                held_back = row.last_error is not None
                row.status, row.sent_at, row.last_error = "sent", utcnow(), None
            sent.append(key)
            if held_back and row.deal_id is not None:
                delay = int((row.sent_at - row.created_at).total_seconds() // 60)
                note_on_timeline(
                    row.deal_id,
                    mail_sent_late(key),
                    f"Email to {', '.join(row.recipients)} sent {delay} min late, after "
                    f"{row.attempts} attempts ({row.subject})",
                )
    return sent


def resend_failed(settings: Settings | None = None) -> list[str]:
    """Send again every email whose send failed (kept as composed); the keys now sent.

    Nothing is lost when SMTP was down after the effect was recorded: the next sweep
    sends it, once, under the same row lock as any other sender of that key.
    """
    return send_outbox(None, settings)
