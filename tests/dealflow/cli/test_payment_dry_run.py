"""`dealflow payments check --dry-run`: what the check would do at a moment, per invoice
the level and who would be told, with nothing changed and no email sent (and no Prefect
server needed); the real check afterwards does what it said. `--help` says that `--now`
alone is the real check, as if it were then."""

from __future__ import annotations

import datetime as dt
import os
import re
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from dealflow.infra.db import session_scope
from models.tables import CollectionHold
from tests.conftest import Inbox
from tests.finance_support import BILLING, invoice, invoiced_deal
from tests.support import database_digest, dealflow

DUE = dt.date(2027, 3, 10)
NOW = "2027-03-12T09:00:00+00:00"  # 2 days after DUE: the customer's payment reminder
AMOUNT = "54,359.00 EUR open"
# No Prefect server: the dry run must not need one.
NO_PREFECT = {"PREFECT_API_URL": "http://127.0.0.1:9/api"}


def dry_run(now: str = NOW) -> list[str]:
    env = {**os.environ, **NO_PREFECT}
    return dealflow("payments", "check", "--dry-run", "--now", now, env=env).stdout.splitlines()


def test_dry_run_changes_nothing_and_the_check_then_does_what_it_said(
    database_url: str, inbox: Inbox, tmp_path: Path
) -> None:
    _, [reminded] = invoiced_deal(DUE, customer="Initech Reminded")
    _, [escalated] = invoiced_deal(DUE - dt.timedelta(days=7), customer="Umbrella Escalated")
    _, [held] = invoiced_deal(DUE - dt.timedelta(days=30), customer="Hooli Held")
    before, mails_before = database_digest(database_url), len(inbox.messages)

    lines = dry_run()

    assert database_digest(database_url) == before, "the dry run changed the database"
    assert len(inbox.messages) == mails_before, "the dry run sent email"
    assert lines[0] == (
        "Dry run of the payment check at 2027-03-12 09:00 UTC: nothing was changed "
        "and no email was sent."
    ), lines
    expected = [
        f'  {reminded} (Initech Reminded) would reach "Payment reminder" (reminder): '
        f"2 days overdue, {AMOUNT}",
        f"    letter to the customer: {BILLING}",
        f'  {escalated} (Umbrella Escalated) would reach "7 days overdue" (rep-and-finance): '
        f"9 days overdue, {AMOUNT}",
        "    in the digest to: Finance team <finance@example.com>, "
        "Sam Rivera <sam.rivera@example.com>",
        f'  {held} (Hooli Held) would reach "30 days overdue: collections" (collections): '
        f"32 days overdue, {AMOUNT}",
        "    in the digest to: Dana Whitfield <dana.whitfield@example.com>, "
        "Lena Fischer <lena.fischer@example.com>",
        "    Hooli Held would go on collections hold",
        "  Would be put on collections hold: Hooli Held",
        "In all: 3 invoice(s) would reach a new level (reminder 1, rep-and-finance 1, "
        "collections 1); 1 letter(s) to customers and 4 digest(s) would be sent; "
        "1 customer(s) would go on collections hold.",
    ]
    for line in expected:
        assert line in lines, f"{line!r} not in:\n" + "\n".join(lines)
    # Invoices in id order, each followed by who is told.
    assert [lines.index(line) for line in expected] == sorted(
        lines.index(line) for line in expected
    )

    # The real check, as if it were then, does what the dry run said.
    env = {**os.environ, "PREFECT_API_URL": "", "PREFECT_HOME": str(tmp_path / "prefect")}
    out = dealflow("payments", "check", "--now", NOW, env=env).stdout
    assert "Put on collections hold: Hooli Held" in out, out
    assert [invoice(n).dunning_level for n in (reminded, escalated, held)] == [
        "reminder",
        "rep-and-finance",
        "collections",
    ]
    with session_scope() as session:
        holds = session.scalars(
            select(CollectionHold.customer_name).where(CollectionHold.cleared_at.is_(None))
        ).all()
    assert holds == ["Hooli Held"]
    sent = inbox.messages[mails_before:]

    def to_about(number: str) -> list[str]:
        return sorted(
            str(m["X-Envelope-To"]) for m in sent if number in str(m["Subject"]) and _dunning(m)
        )

    assert to_about(reminded) == [BILLING]
    assert to_about(escalated) == ["finance@example.com", "sam.rivera@example.com"]
    assert to_about(held) == ["dana.whitfield@example.com", "lena.fischer@example.com"]

    # Done once: a dry run now foresees nothing more.
    assert "  No invoice would reach a new level." in dry_run()


def _dunning(message: EmailMessage) -> bool:
    subject = str(message["Subject"])
    return subject.startswith(("Payment reminder:", "Overdue:"))


def test_help_says_now_is_the_real_check_and_points_to_the_dry_run() -> None:
    text = dealflow("payments", "check", "--help", env={**os.environ, "COLUMNS": "200"}).stdout
    flat = re.sub(r"[\s│]+", " ", text)
    assert "Run the real check as if it were this time" in flat, flat
    assert "letters are really sent, customers really put on collections hold" in flat, flat
    assert "timeline entries dated then" in flat, flat
    assert "add --dry-run" in flat, flat
    assert re.search(r"--dry-run (<bool> )?Change nothing and send nothing", flat), flat
