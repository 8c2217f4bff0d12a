"""`dealflow deal progress` and `dealflow deal change-request` as the sales rep runs them
(#17 item 3): what each prints, a refusal that says why and changes nothing, and the
report mailed to the customer's contact with --to-customer."""

from __future__ import annotations

import datetime as dt

import pytest

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.records import timeline
from harness.mail import to
from models import keys
from tests.conftest import Inbox
from tests.support import dealflow
from tests.tasks.test_signing import note, stored

pytestmark = pytest.mark.usefixtures("database_url")
REP = "sam.rivera@example.com"


def test_the_rep_reports_progress_and_records_a_change_request(inbox: Inbox) -> None:
    deal_id = stored()
    early = dealflow("deal", "progress", deal_id, "--note", "Started", check=False)
    assert early.returncode == 1
    assert f"Nothing was recorded: the delivery of {deal_id} is not kicked off yet" in early.stderr

    note(deal_id, keys.KICKOFF, "delivery_kickoff", utcnow() - dt.timedelta(days=8))
    done = dealflow(
        "deal", "progress", deal_id, "--note", "Depot 1 live; depot 2 next week.", "--to-customer"
    )
    assert done.stdout.strip() == (
        f"Recorded the progress report of {deal_id} for delivery week 2; emailed to "
        "Jonas Weber <jonas.weber@acme-logistics.example>."
    )
    inbox.wait_for(to("jonas.weber@acme-logistics.example", "Progress report, week 2", deal_id))
    again = dealflow("deal", "progress", deal_id, "--note", "Again", check=False)
    assert again.returncode == 1
    assert (
        f"Nothing was recorded: the progress report for week 2 of {deal_id} was already "
        f"recorded by {REP} at"
    ) in again.stderr

    changed = dealflow(
        *("deal", "change-request", deal_id, "--summary", "Add a third depot"),
        *("--decision", "approved", "--by", "omar.haddad@example.com", "--note", "PO 4711"),
    )
    assert changed.stdout.strip() == f"Recorded change request 1 of {deal_id}: approved."
    wrong = dealflow(
        "deal", "change-request", deal_id, "--summary", "X", "--decision", "maybe", check=False
    )
    assert wrong.returncode == 1 and "approved or rejected" in wrong.stderr
    with session_scope() as session:
        recorded = [
            (t.key, t.actor)
            for t in timeline(session, deal_id)
            if t.key.startswith(("progress/", "change-request/"))
        ]
    assert recorded == [
        ("progress/week-2", REP),
        ("change-request/1", "omar.haddad@example.com"),
    ]
