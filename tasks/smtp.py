"""Talking to the mail server: one connection for many messages."""

from __future__ import annotations

import contextlib
import smtplib
from email.message import Message

import yagmail

from models.settings import Settings

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

    def send(self, message: Message | str, recipients: list[str]) -> None:
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
            self.send(message, recipients)  # the server dropped an idle one
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


def smtp_send(message: Message | str, recipients: list[str], settings: Settings) -> None:
    with SmtpSession(settings) as smtp:
        smtp.send(message, recipients)
