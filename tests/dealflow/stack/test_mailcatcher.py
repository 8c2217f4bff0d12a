"""The demo stack's mail catcher, over HTTP without the stack: dates as a person reads
them, the newest message first (and saying so), the text part wrapped to the window."""

from __future__ import annotations

import re
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dealflow.stack.mailcatcher import MailStore, inbox_app, readable_date


def letter(subject: str, date: str, text: str = "Hello.") -> bytes:
    message = EmailMessage()
    message["From"] = "dealflow@example.com"
    message["To"] = "grace.lin@example.com"
    message["Subject"] = subject
    message["Date"] = date
    message.set_content(text)
    message.add_alternative(f"<p>{text}</p>", subtype="html")
    return message.as_bytes()


@pytest.mark.parametrize(
    ("header", "shown"),
    [
        ("Sat, 05 Dec 2026 09:30:00 +0000", "Sat 5 Dec 2026, 09:30 UTC"),
        # Another zone is shown in UTC, and says so.
        ("Sat, 05 Dec 2026 10:30:15 +0100", "Sat 5 Dec 2026, 09:30 UTC"),
        ("Fri, 04 Dec 2026 23:05:00 -0500", "Sat 5 Dec 2026, 04:05 UTC"),
        ("Sat, 05 Dec 2026 09:30:00 -0000", "Sat 5 Dec 2026, 09:30 UTC"),
        ("not a date", "not a date"),
        (None, "\u2014"),
    ],
)
def test_dates_read_as_a_person_reads_them(header: str | None, shown: str) -> None:
    assert readable_date(header) == shown


def test_the_inbox_lists_the_newest_first_with_readable_dates(tmp_path: Path) -> None:
    store = MailStore(tmp_path)
    store.add(letter("Older", "Fri, 04 Dec 2026 08:00:00 +0000"))
    store.add(letter("Newer", "Sat, 05 Dec 2026 09:30:00 +0000"))
    page = TestClient(inbox_app(store)).get("/")
    assert page.status_code == 200
    shown = re.sub(r"<[^>]+>", "", page.text)  # as a browser shows it
    assert "newest first" in shown
    assert shown.index("Newer") < shown.index("Older")
    assert "Sat 5 Dec 2026, 09:30 UTC" in shown
    assert "Fri 4 Dec 2026, 08:00 UTC" in shown
    assert "+0000" not in shown, "not the raw header"
    # On a phone the date breaks after the day, not inside a word.
    assert "<span>Sat 5 Dec 2026,</span> <span>09:30 UTC</span>" in page.text


def test_a_message_page_wraps_its_text_part(tmp_path: Path) -> None:
    store = MailStore(tmp_path)
    link = "https://deals.example.com/approvals/" + "x" * 300
    store.add(letter("Approve", "Sat, 05 Dec 2026 09:30:00 +0000", f"Please decide: {link}"))
    page = TestClient(inbox_app(store)).get("/messages/000001")
    assert page.status_code == 200
    assert "Sat 5 Dec 2026, 09:30 UTC" in page.text
    assert "<pre class=text>" in page.text
    style = page.text.split("<style>", 1)[1].split("</style>", 1)[0]
    assert ".text{white-space:pre-wrap;overflow-wrap:anywhere}" in style
    assert f"<a href='{link}'>{link}</a>" in page.text
