"""What finance reads on the terminal and in the mailbox: `invoice list` as a table with
its column headers; `payments check` as a few plain lines, without a Python dict or
Prefect's INFO logs; and the payment check's email to finance only on a day it did
something, not a daily "0 escalation(s)"."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from models.settings import get_settings
from tests.conftest import Inbox
from tests.finance_support import invoiced_deal
from tests.support import dealflow

DUE = dt.date(2027, 3, 10)  # a Wednesday


@pytest.fixture
def on_sqlite(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, inbox: Inbox) -> Iterator[str]:
    monkeypatch.setenv("DEALFLOW_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    yield sqlite_url
    get_settings.cache_clear()


@pytest.mark.usefixtures("on_sqlite")
def test_invoice_list_has_column_headers_over_aligned_columns() -> None:
    _deal, [number] = invoiced_deal(DUE, customer="Globex Corporation")
    lines = dealflow("invoice", "list").stdout.splitlines()
    header, row, total = lines
    for name in ("Invoice", "Due", "Open balance", "Cur.", "Status", "Dunning", "Customer"):
        assert name in header, header
    assert row.startswith(number)
    assert row.index("2027-03-10") == header.index("Due")
    assert row.index("EUR") == header.index("Cur.")
    assert row.index("Globex Corporation") == header.index("Customer")
    # The balance ends where its header does: amounts read down a right-aligned column.
    assert row.index("54,359.00") + len("54,359.00") == header.index("Open balance") + len(
        "Open balance"
    )
    assert total == "1 of 1 open invoice(s) shown, the longest overdue first."


def test_invoice_list_with_nothing_open_says_so(on_sqlite: str) -> None:
    assert dealflow("invoice", "list").stdout == "No invoice has money to come.\n"


def payment_check(tmp_path: Path, day: dt.date) -> tuple[str, str]:
    """`dealflow payments check --now DAY` on a Prefect server of its own (Prefect's
    temporary one): what it printed, on stdout and stderr."""
    env = {**os.environ, "PREFECT_API_URL": "", "PREFECT_HOME": str(tmp_path / "prefect")}
    result = dealflow("payments", "check", "--now", f"{day.isoformat()}T09:00:00+00:00", env=env)
    return result.stdout, result.stderr


def reports_to_finance(inbox: Inbox, day: dt.date) -> list[EmailMessage]:
    return inbox.matching(lambda m: str(m["Subject"]).startswith(f"Payment check {day}"))


@pytest.mark.usefixtures("on_sqlite")
def test_payments_check_prints_plain_lines_and_mails_finance_only_when_it_did_something(
    tmp_path: Path, inbox: Inbox
) -> None:
    invoiced_deal(DUE, customer="Initech Quiet Day")
    quiet_day = DUE - dt.timedelta(days=30)
    out, err = payment_check(tmp_path, quiet_day)
    assert out.splitlines() == [
        f"Payment check of {quiet_day}:",
        "  Escalations: none",
        "  Paid deals closed: none",
        "  Report to finance: not emailed (nothing to report); the aging report is the "
        "artifact aging-report",
    ], out
    assert "INFO" not in err and "Created flow run" not in err, err
    assert not reports_to_finance(inbox, quiet_day), "no '0 escalation(s)' email"

    busy_day = DUE + dt.timedelta(days=7)
    out, err = payment_check(tmp_path, busy_day)
    assert "{" not in out and "Counter" not in out, out
    assert "  Escalations: 1 (rep-and-finance 1)" in out.splitlines(), out
    assert "INFO" not in err, err
    [report] = reports_to_finance(inbox, busy_day)
    assert "Report to finance: emailed to" in out and str(report["To"]).split("@")[0] in out
