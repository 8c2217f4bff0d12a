"""Sending email exactly once per key: claim the key in the outbox, then hand it to SMTP."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate

import yagmail
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dealflow.clock import utcnow
from dealflow.db import session_scope
from dealflow.rendering import render
from models.settings import Settings, get_settings
from models.tables import SentMessage


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
    return message


def smtp_send(message: EmailMessage, recipients: list[str], settings: Settings) -> None:
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    client = yagmail.SMTP(
        user=settings.smtp_user or settings.mail_from,
        password=password,
        host=settings.smtp_host,
        port=settings.smtp_port,
        smtp_ssl=settings.smtp_tls == "ssl",
        smtp_starttls=settings.smtp_tls == "starttls",
        smtp_skip_login=settings.smtp_user is None,
        soft_email_validation=False,
        timeout=settings.smtp_timeout_seconds,
    )
    # yagmail opens, secures and authenticates the connection; the message itself is
    # built with the standard library because yagmail cannot send a separate text part.
    client.login()
    try:
        client.smtp.send_message(message, from_addr=settings.mail_from, to_addrs=recipients)
    finally:
        client.close()


def _claim(mail: OutgoingEmail, settings: Settings) -> bool:
    """Record the email as pending; False if it was already sent under this key."""
    for _ in range(2):
        try:
            with session_scope() as session:
                row = session.scalar(select(SentMessage).where(SentMessage.key == mail.key))
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
                elif row.status == "sent":
                    return False
                row.attempts += 1
                return True
        except IntegrityError:
            continue  # another process inserted the same key first: read its row
    raise RuntimeError(f"could not claim outbox key {mail.key}")


def deliver(mail: OutgoingEmail, settings: Settings | None = None) -> bool:
    """Send ``mail`` unless it was sent before under its key; True if sent now."""
    settings = settings or get_settings()
    if not _claim(mail, settings):
        return False
    message = compose(mail, settings)
    try:
        smtp_send(message, [*mail.to, *mail.cc], settings)
    except Exception as exc:
        with session_scope() as session:
            row = session.scalar(select(SentMessage).where(SentMessage.key == mail.key))
            if row is not None:
                row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        raise
    with session_scope() as session:
        row = session.scalar(select(SentMessage).where(SentMessage.key == mail.key))
        assert row is not None
        row.status = "sent"
        row.sent_at = utcnow()
        row.last_error = None
    return True
