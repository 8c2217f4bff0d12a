"""An email as Dealflow sends it: what it says, to whom, under which key, and its MIME
message."""

from __future__ import annotations

import binascii
import hashlib
import io
import secrets
from dataclasses import dataclass, field
from email.generator import Generator
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import formataddr, formatdate, parseaddr
from typing import Any

from dealflow.infra.rendering import render_in
from models.language import ENGLISH
from models.settings import Settings


class _ShortHeadersAsTheyAre(Compat32):
    """compat32 folding, minus its work on the headers that need none: short ASCII ones,
    most of any message, and those already encoded and folded here (``_header``). It
    was most of the time it took to turn a message to text; and folding an encoded
    header again moved its value to a line of its own, which readers then took with a
    leading space."""

    def fold(self, name: str, value: Any) -> str:
        if isinstance(value, str) and value.isascii() and "\r" not in value:
            first, *more = value.split("\n")
            fits = len(name) + 2 + len(first) <= 78 and all(
                line[:1] in (" ", "\t") and len(line) <= 78 for line in more
            )
            if fits:
                return f"{name}: " + self.linesep.join([first, *more]) + self.linesep
        return super().fold(name, value)


_SMTP_TEXT = _ShortHeadersAsTheyAre()


def as_text(message: Message) -> str:
    """``message`` as the text stored in the outbox and sent over SMTP (ASCII)."""
    out = io.StringIO()
    Generator(out, mangle_from_=False, policy=_SMTP_TEXT).flatten(message)
    return out.getvalue()


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
    # The recipient's language (models/language.py): the templates' and the subject's.
    language: str = ENGLISH


def message_id_for(key: str, settings: Settings) -> str:
    # Derived from the key, so a resend after a crash between "sent" and "recorded"
    # carries the same Message-ID and mail clients show it once.
    domain = settings.mail_from.rpartition("@")[2].strip("> ") or "dealflow.local"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"


def compose(mail: OutgoingEmail, settings: Settings) -> Message:
    """``mail`` as a MIME message: a text and an HTML part (with its inline images).

    Built with the standard library's classic (compat32) message classes: the modern
    ``EmailMessage`` parses every header it is given and cost the payment check most of
    its time over thousands of letters; these take what they are given, so every header
    is encoded here.
    """
    context = {**mail.context, "subject": mail.subject}
    html: MIMEBase = _text_part(
        render_in(mail.language, f"email/{mail.template}.html", **context), "html"
    )
    if mail.images:
        related = MIMEMultipart("related", boundary=_boundary())
        del related["MIME-Version"]
        related.attach(html)
        for name, png in mail.images.items():
            image = MIMEImage(png, "png")
            del image["MIME-Version"]
            image["Content-ID"] = f"<{name}>"
            image.add_header("Content-Disposition", "inline", filename=f"{name}.png")
            related.attach(image)
        html = related
    message = MIMEMultipart("alternative", boundary=_boundary())
    message.attach(
        _text_part(render_in(mail.language, f"email/{mail.template}.txt", **context), "plain")
    )
    message.attach(html)
    message["From"] = sender(settings)
    message["To"] = _addresses(mail.to)
    if mail.cc:
        message["Cc"] = _addresses(mail.cc)
    message["Subject"] = _header("Subject", mail.subject)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id_for(mail.key, settings)
    message["X-Dealflow-Key"] = mail.key
    # Headers first, as mail clients list them: MIMEMultipart set its own two already.
    for name in ("Content-Type", "MIME-Version"):
        value = message[name]
        del message[name]
        message[name] = value
    return message


def plain_text(mail: OutgoingEmail) -> str:
    """The text part of ``mail`` as its recipient reads it (links included)."""
    context = {**mail.context, "subject": mail.subject}
    return render_in(mail.language, f"email/{mail.template}.txt", **context)


def email_text(mail: OutgoingEmail, settings: Settings) -> str:
    """``mail`` as the text stored in the outbox and sent over SMTP: ``compose`` and
    ``as_text`` in one, written directly for the usual text and HTML alternative.

    The email package's message objects and generator were half the cost of a letter
    over thousands of them; the layout is theirs (``compose`` still builds a message
    with images, and a test holds the two to the same text).
    """
    if mail.images:
        return as_text(compose(mail, settings))
    plain = _part_text(plain_text(mail), "plain")
    context = {**mail.context, "subject": mail.subject}
    html = _part_text(render_in(mail.language, f"email/{mail.template}.html", **context), "html")
    boundary = _boundary()
    headers = [
        ("From", sender(settings)),
        ("To", _addresses(mail.to)),
        *([("Cc", _addresses(mail.cc))] if mail.cc else []),
        ("Subject", _header("Subject", mail.subject)),
        ("Date", formatdate(localtime=False)),
        ("Message-ID", message_id_for(mail.key, settings)),
        ("X-Dealflow-Key", mail.key),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
        ("MIME-Version", "1.0"),
    ]
    head = "".join(_SMTP_TEXT.fold(name, value) for name, value in headers)
    return f"{head}\n--{boundary}\n{plain}\n--{boundary}\n{html}\n--{boundary}--\n"


def _part_text(text: str, subtype: str) -> str:
    # As ``_text_part`` and the generator would write it.
    if _seven_bit(text):
        return (
            f'Content-Type: text/{subtype}; charset="us-ascii"\n'
            f"Content-Transfer-Encoding: 7bit\n\n{text}"
        )
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\n'
        "Content-Transfer-Encoding: quoted-printable\n\n"
        + binascii.b2a_qp(text.encode(), istext=True).decode("ascii")
    )


def _seven_bit(text: str) -> bool:
    return text.isascii() and max(map(len, text.splitlines()), default=0) <= 998


def sender(settings: Settings) -> str:
    """The From header: the sender's name and address (the address alone without a name)."""
    name = settings.mail_from_name.strip()
    if not name:
        return _addresses([settings.mail_from])
    return formataddr((name, settings.mail_from), charset="utf-8")


def _boundary() -> str:
    # Chosen here, unguessable, so that no text of a deal can contain it: the generator
    # would otherwise compile a regular expression per message to make sure, which was
    # a tenth of the payment check's time over thousands of letters.
    return f"=_dealflow_{secrets.token_hex(16)}"


def _text_part(text: str, subtype: str) -> MIMEBase:
    # Short-lined ASCII goes as 7bit; anything else as quoted-printable UTF-8, which keeps
    # a mostly-Latin letter readable in its source and every line within SMTP's limit.
    if _seven_bit(text):
        part: MIMEBase = MIMEText(text, subtype, "us-ascii")
    else:
        part = MIMENonMultipart("text", subtype, charset="utf-8")
        # binascii's encoder: the email package's own is pure Python, and was slower
        # than everything else about a letter.
        part.set_payload(binascii.b2a_qp(text.encode(), istext=True).decode("ascii"))
        part["Content-Transfer-Encoding"] = "quoted-printable"
    del part["MIME-Version"]  # once, on the message itself
    return part


def _header(name: str, value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8", header_name=name).encode()


def _addresses(addresses: list[str]) -> str:
    return ", ".join(
        formataddr(parseaddr(address), charset="utf-8") if not address.isascii() else address
        for address in addresses
    )
