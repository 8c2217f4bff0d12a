"""An email's notice in its recipients' messaging apps: queued in the outbox next to the
email (``<email key>:channel``), posted once by the same senders, with Apprise.

The notice is the email's subject as its title and its text part as its body, the
signed link included: the same words the recipient reads in the email.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import apprise

from dealflow.infra.clock import utcnow
from models import keys
from models.channels import REFERENCE, ChannelError, redact, resolve_channel
from models.matrix import Matrix
from models.settings import Settings
from tasks.email_message import OutgoingEmail, message_id_for, plain_text


class ChannelUnavailable(ConnectionError):
    """The messaging service did not take the notice; it is tried again like an email."""


class _Secrets(logging.Filter):
    """Puts the values of channels' ``${NAME}`` references back as ``${NAME}`` in
    Apprise's own log lines: a token it finds wrong is logged as it is."""

    def __init__(self) -> None:
        super().__init__()
        self.known: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if self.known:
            message = record.getMessage()
            for value, reference in self.known.items():
                message = message.replace(value, reference)
            record.msg, record.args = message, None
        return True


_SECRETS = _Secrets()
logging.getLogger(apprise.LOGGER_NAME).addFilter(_SECRETS)


def channel_rows(
    mail: OutgoingEmail, matrix: Matrix, team: str | None, settings: Settings
) -> list[dict[str, Any]]:
    """The outbox rows of ``mail``'s notices, one per channel its recipients have (in
    the order of its recipients, each channel once), as column values; [] for none.
    ``team`` is the team of the deal the email is about (None: about no deal)."""
    owners: dict[str, list[str]] = {}
    for address in [*mail.to, *mail.cc]:
        channel = matrix.channel_for(address, team)
        if channel is not None:
            owners.setdefault(channel, []).append(address)
    if not owners:
        return []
    text = plain_text(mail)
    now = utcnow()
    rows = []
    for index, (channel, addresses) in enumerate(owners.items()):
        key = keys.channel_notice(mail.key, index)
        rows.append(
            {
                "key": key,
                "deal_id": mail.deal_id,
                "kind": mail.kind,
                "recipients": addresses,
                "cc": [],
                "subject": mail.subject,
                "message_id": message_id_for(key, settings),
                "status": "pending",
                "attempts": 0,
                "message": None,
                "channel": channel,
                "notice": text,
                "created_at": now,
            }
        )
    return rows


def post(channel: str, title: str, body: str) -> None:
    """Post a notice to ``channel`` (an Apprise URL, ``${NAME}`` references resolved from
    the environment). ChannelError if the URL cannot be used; ChannelUnavailable if the
    service did not take it, with what Apprise said (secrets put back as references)."""
    url = resolve_channel(channel)
    for name in REFERENCE.findall(channel):
        _SECRETS.known[os.environ[name]] = f"${{{name}}}"
    service = apprise.Apprise()
    if not service.add(url):
        raise ChannelError("Apprise cannot post to this URL (its form is wrong)")
    result = service.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
    if not result:
        said = "; ".join(entry.message for entry in result.logs() if entry.level != "DEBUG")
        raise ChannelUnavailable(redact(said or f"the service refused ({result.status})", channel))
