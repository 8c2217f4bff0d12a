"""The sales rep's signing page and ``dealflow deal sign`` on a deal's real run: opening
the link changes nothing, a date that cannot be or a link for another page records
nothing, the first POST records once and resumes the run (kickoff and the invoices come
only then), and a second answer hears who recorded it and when."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.infra.records import timeline
from harness.mail import SIGNING_LINK, SIGNING_SUBJECT, decide, link_in, sign, to
from harness.runs import run_state, wait_for_state
from models.tables import Invoice
from tests.conftest import Inbox
from tests.support import approve_via_email, deal_waiting_at_manager, dealflow

pytestmark = pytest.mark.stack

REP = "sam.rivera@example.com"


def keys_of(deal_id: str) -> list[str]:
    with session_scope() as session:
        return [t.key for t in timeline(session, deal_id)]


def invoices_of(deal_id: str) -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(Invoice.number).where(Invoice.deal_id == deal_id)))


def test_the_signed_contract_is_recorded_once_from_the_reps_link(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    deal_id, run_id, approval = deal_waiting_at_manager(inbox, tmp_path)
    early = dealflow(
        "deal", "sign", deal_id, "--signed-by", "Jonas Weber", "--document", "x.pdf", check=False
    )
    assert early.returncode == 1
    assert f"deal {deal_id} is not waiting for the signed contract" in early.stderr, early.stderr

    assert decide(approval, "approve", "fine").status_code == 200
    for approver in ("dana.whitfield@example.com", "lena.fischer@example.com"):
        approve_via_email(inbox, approver, "Approval needed", deal_id, "fine")
    link = link_in(inbox.wait_for(to(REP, SIGNING_SUBJECT, deal_id)), SIGNING_LINK)
    wait_for_state(run_id, "PAUSED", key="signing")
    before = keys_of(deal_id)

    page = httpx.get(link, timeout=30)  # a mail scanner, or the rep opening the link
    assert page.status_code == 200
    assert "Signed for the customer by" in page.text and "Record the signed contract" in page.text
    assert keys_of(deal_id) == before and run_state(run_id)[:2] == ("PAUSED", "signing")

    # Links for another page are no good here, and this one is no good there.
    base, token = link.rsplit("/signing/", 1)
    approval_token = approval.rsplit("/", 1)[1]
    wrong = httpx.post(f"{base}/signing/{approval_token}", data={"signed_by": "x"}, timeout=30)
    assert wrong.status_code == 403 and "It is not a signing link." in wrong.text
    as_approval = httpx.post(f"{base}/approvals/{token}", data={"decision": "approve"}, timeout=30)
    assert as_approval.status_code == 403

    today = dt.datetime.now(ZoneInfo("Europe/Berlin")).date()  # the EMEA team's day
    tomorrow = sign(link, signed_on=(today + dt.timedelta(days=1)).isoformat())
    assert tomorrow.status_code == 409 and "is in the future" in tomorrow.text
    earlier = sign(link, signed_on=(today - dt.timedelta(days=1)).isoformat())
    assert earlier.status_code == 409 and "is before the last approval" in earlier.text
    garbled = sign(link, signed_on="2026-13-45")
    assert garbled.status_code == 400 and "Give the date as YYYY-MM-DD" in garbled.text
    no_document = sign(link, document=" ")
    assert no_document.status_code == 409 and "document reference" in no_document.text
    assert keys_of(deal_id) == before, "nothing recorded"
    assert invoices_of(deal_id) == [], "no invoice before the contract is signed"
    assert run_state(run_id)[:2] == ("PAUSED", "signing")

    recorded = sign(link, "Jonas Weber", "ACME-MSA-signed.pdf", today.isoformat())
    assert recorded.status_code == 200 and "Signed contract recorded" in recorded.text
    again = sign(link, "Someone Else", "other.pdf")
    assert again.status_code == 409 and f"already recorded by {REP}" in again.text
    cli = dealflow("deal", "sign", deal_id, "--signed-by", "X", "--document", "y.pdf", check=False)
    assert cli.returncode == 1
    assert f"the signed contract of {deal_id} was already recorded by {REP} at" in cli.stderr
    shown = httpx.get(link, timeout=30)
    assert "The signed contract was already recorded by" in shown.text
    assert "<form" not in shown.text

    inbox.wait_for(to("omar.haddad@example.com", "Delivery kickoff", deal_id))
    wait_for_state(run_id, "PAUSED", key="acceptance")
    assert invoices_of(deal_id) == [f"INV-{deal_id}-01"]
    with session_scope() as session:
        entries = [t for t in timeline(session, deal_id) if t.key == "signed"]
    assert len(entries) == 1 and entries[0].actor == REP
    assert entries[0].event == (
        f"Contract signed for the customer by Jonas Weber on {today.isoformat()}, "
        "document ACME-MSA-signed.pdf"
    )
    archived = dealflow("deal", "archive", deal_id, "--reference", "ARCH-7", "--actor", "ines")
    assert (
        archived.stdout.strip() == f"Recorded the signed contract of {deal_id} as archived: ARCH-7."
    )
