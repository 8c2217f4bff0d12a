"""A local mail catcher for the demo stack: an SMTP server that keeps every message and an
inbox page to read them and click their links. Nothing leaves the machine.

The inbox lists the newest message first; dates are shown in UTC, as a person reads them
("Sat 5 Dec 2026, 09:30 UTC"), and a message's text part wraps to the window."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import email.utils
import html
import re
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse


class MailStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def add(self, raw: bytes) -> None:
        with self._lock:
            number = len(list(self.folder.glob("*.eml"))) + 1
            tmp = self.folder / f"{number:06d}.tmp"
            tmp.write_bytes(raw)
            tmp.rename(self.folder / f"{number:06d}.eml")

    def messages(self) -> list[tuple[str, EmailMessage]]:
        return [
            (p.stem, email.message_from_bytes(p.read_bytes(), policy=email.policy.default))
            for p in sorted(self.folder.glob("*.eml"), reverse=True)
        ]

    def get(self, number: str) -> EmailMessage:
        path = self.folder / f"{number}.eml"
        if not re.fullmatch(r"\d{6}", number) or not path.exists():
            raise HTTPException(404, "no such message")
        return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


class _Handler:
    def __init__(self, store: MailStore) -> None:
        self.store = store

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.store.add(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def _body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    return part.get_content() if part is not None else ""


def readable_date(header: object) -> str:
    """A Date header as a person reads it, in UTC and saying so: "Sat 5 Dec 2026, 09:30 UTC".
    A header that is not a date is shown as it came; no header, as a dash."""
    if header is None or not str(header).strip():
        return "—"
    try:
        moment = email.utils.parsedate_to_datetime(str(header))
    except (TypeError, ValueError):
        return str(header)
    if moment.tzinfo is None:  # "-0000": the sender did not know its zone; RFC 5322 says UTC
        moment = moment.replace(tzinfo=dt.UTC)
    moment = moment.astimezone(dt.UTC)
    return f"{moment:%a} {moment.day} {moment:%b %Y, %H:%M} UTC"


def _date_cell(header: object) -> str:
    """The date of an inbox row: on a narrow screen it breaks after the day, not inside it."""
    shown = readable_date(header)
    day, comma, time = shown.partition(", ")
    if not comma or not time.endswith(" UTC"):  # a header that is not a date, as it came
        return html.escape(shown)
    return f"<span>{html.escape(day)},</span> <span>{html.escape(time)}</span>"


# Shared by both pages: nothing wider than a phone's screen (390 px), long addresses,
# subjects and links broken where they must be.
_STYLE = (
    "body{font-family:sans-serif;margin:24px}h1,h2,p,td{overflow-wrap:anywhere}"
    "td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
    ".date{overflow-wrap:normal}.date span{white-space:nowrap}"
    "iframe{box-sizing:border-box;width:100%;height:640px;border:1px solid #ddd}"
    ".text{white-space:pre-wrap;overflow-wrap:anywhere}"
)
_HEAD = "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"


def inbox_app(store: MailStore) -> FastAPI:
    app = FastAPI(title="Dealflow mail catcher")

    @app.get("/", response_class=HTMLResponse)
    def inbox() -> str:
        rows = "".join(
            f"<tr><td class=date>{_date_cell(m['Date'])}</td><td>{html.escape(str(m['To']))}"
            f"{' (cc ' + html.escape(str(m['Cc'])) + ')' if m['Cc'] else ''}</td>"
            f"<td><a href='/messages/{n}'>{html.escape(str(m['Subject']))}</a></td></tr>"
            for n, m in store.messages()
        )
        return (
            f"{_HEAD}<title>Dealflow inbox</title><style>{_STYLE}</style>"
            "<h1>Dealflow inbox</h1><p>Every email the local stack sends lands here, "
            "the newest first; times are UTC. <a href='/'>Refresh</a></p>"
            "<table><tr><th>Date</th><th>To</th><th>Subject</th></tr>"
            f"{rows or '<tr><td colspan=3>No mail yet.</td></tr>'}</table>"
        )

    @app.get("/messages/{number}", response_class=HTMLResponse)
    def message(number: str) -> str:
        m = store.get(number)
        text = html.escape(_body(m, "plain"))
        text = re.sub(r"(https?://[^\s<]+)", r"<a href='\1'>\1</a>", text)
        return (
            f"{_HEAD}<title>{html.escape(str(m['Subject']))}</title><style>{_STYLE}</style>"
            "<p><a href='/'>&larr; Inbox</a></p>"
            f"<h2>{html.escape(str(m['Subject']))}</h2>"
            f"<p>{html.escape(readable_date(m['Date']))}</p>"
            f"<p>From {html.escape(str(m['From']))} to {html.escape(str(m['To']))}"
            f"{' cc ' + html.escape(str(m['Cc'])) if m['Cc'] else ''}</p>"
            "<h3>HTML part</h3><iframe sandbox='allow-popups allow-popups-to-escape-sandbox' "
            # Links open in a tab of their own: the approval page refuses to be framed.
            f'srcdoc="{html.escape("<base target=_blank>" + _body(m, "html"), quote=True)}">'
            "</iframe>"
            f"<h3>Text part</h3><pre class=text>{text}</pre>"
        )

    @app.get("/api/messages")
    def messages() -> list[dict[str, str]]:
        return [
            {
                "id": n,
                "to": str(m["To"]),
                "cc": str(m["Cc"] or ""),
                "subject": str(m["Subject"]),
                "text": _body(m, "plain"),
            }
            for n, m in store.messages()
        ]

    return app


def run(folder: Path, host: str, smtp_port: int, http_port: int) -> None:
    store = MailStore(folder)
    controller = Controller(_Handler(store), hostname=host, port=smtp_port)
    controller.start()
    try:
        uvicorn.run(inbox_app(store), host=host, port=http_port, log_level="warning")
    finally:
        controller.stop()
