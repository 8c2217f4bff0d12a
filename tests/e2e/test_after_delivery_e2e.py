"""The duties around delivery and after payment, on the real stack with a moved clock
(#17 items 3, 5 and 6): while delivery runs the rep owes a weekly progress report, a
missed week reminds them and two missed weeks tell their sales manager; change requests
are recorded; after acceptance customer success takes over and the customer's contact
gets a satisfaction survey, whose low score opens a complaint that escalates when left
unanswered; a month after the deal is paid the rep is asked for a repurchase conversation.

Ops staff move the clock the way they run the sweep by hand: ``dealflow sla sweep --now``.
Everything a person does goes through the commands, links and emails they use."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.infra.records import timeline
from harness.mail import ACCEPTANCE_LINK, SURVEY_LINK, link_in, sign_from_email, text_of, to
from harness.runs import wait_for_state
from models import keys
from models.tables import Invoice
from tests.conftest import Inbox
from tests.support import approve_via_email, deal_file, dealflow, submit

pytestmark = pytest.mark.stack

REP = "priya.natarajan@example.com"  # examples/initech.json, team nam
MANAGER, LEGAL = "tom.alvarez@example.com", "lena.fischer@example.com"
DELIVERY, CUSTOMER = "grace.lin@example.com", "accounts@initech.example"
SUCCESS, HEAD_OF_SALES = "kai.brennan@example.com", "victor.stone@example.com"


def sweep_at(moment: dt.datetime, deal_id: str) -> list[str]:
    """What a run of the sla-sweep deployment did about the deal on a clock at ``moment``."""
    done = dealflow("sla", "sweep", "--now", moment.isoformat()).stdout.splitlines()
    return [line for line in done if line.startswith(f"{deal_id}/")]


def entry_at(deal_id: str, key: str) -> dt.datetime:
    with session_scope() as session:
        [at] = [t.at for t in timeline(session, deal_id) if t.key == key]
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def keys_of(deal_id: str, prefix: str) -> list[str]:
    """The deal's timeline keys under ``prefix``, in the timeline's order (by time: the
    sweep's entries are at its moved clock)."""
    with session_scope() as session:
        return [t.key for t in timeline(session, deal_id) if t.key.startswith(prefix)]


def test_progress_reports_change_requests_and_the_repurchase_follow_up(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    path, deal_id = deal_file(tmp_path, "initech.json")
    run_id = submit(path)
    approve_via_email(inbox, MANAGER, "Approval needed", deal_id, "fine")
    approve_via_email(inbox, LEGAL, "Approval needed", deal_id, "standard contract")
    sign_from_email(inbox, REP, deal_id)
    acceptance = inbox.wait_for(to(DELIVERY, "Record acceptance", deal_id))
    wait_for_state(run_id, "PAUSED", key="acceptance")
    kickoff = entry_at(deal_id, keys.KICKOFF)
    # Administration archives the signed contract, as it is asked to.
    dealflow("deal", "archive", deal_id, "--reference", "ARCH-2026-0042")

    # Week 1: the rep reports, and sends it to the customer.
    said = dealflow(
        "deal",
        "progress",
        deal_id,
        "--note",
        "Seats provisioned for 2 of 3 teams",
        "--to-customer",
    ).stdout
    assert said.startswith(f"Recorded the progress report of {deal_id} for delivery week 1"), said
    report = inbox.wait_for(to(CUSTOMER, "Progress report, week 1", deal_id))
    assert "Seats provisioned for 2 of 3 teams" in text_of(report)
    assert REP in str(report["Cc"])
    again = dealflow("deal", "progress", deal_id, "--note", "twice", check=False)
    assert again.returncode == 1 and "already recorded" in again.stderr, again.stderr
    assert sweep_at(kickoff + dt.timedelta(days=7, hours=1), deal_id) == [], "week 1 reported"

    # Week 2 passes without a report: the rep is reminded, once.
    week2 = kickoff + dt.timedelta(days=14, hours=1)
    assert sweep_at(week2, deal_id) == [f"{deal_id}/progress/week-2/reminder to {REP}"]
    assert sweep_at(week2 + dt.timedelta(hours=1), deal_id) == [], "once"
    inbox.wait_for(to(REP, "Progress report for week 2 due", deal_id))

    # Week 3 as well: two weeks in a row, the rep's sales manager is told.
    week3 = kickoff + dt.timedelta(days=21, hours=1)
    [escalated] = sweep_at(week3, deal_id)
    assert escalated.startswith(f"{deal_id}/progress/week-3/escalation to {MANAGER}")
    told = inbox.wait_for(to(MANAGER, "Progress reports missing", deal_id))
    assert REP in str(told["Cc"])
    assert keys_of(deal_id, "progress/") == [
        "progress/week-1",
        "progress/week-2/reminder",
        "progress/week-3/escalation",
    ]

    # A change request during delivery, with its decision.
    said = dealflow(
        "deal",
        "change-request",
        deal_id,
        "--summary",
        "Add 5 seats for the night shift",
        "--decision",
        "approved",
    ).stdout
    assert said.startswith(f"Recorded change request 1 of {deal_id}: approved"), said

    # Accepted, then paid in full: the run ends, and no progress is owed any more.
    accepted = httpx.post(link_in(acceptance, ACCEPTANCE_LINK), data={"report": "AR-77"})
    assert accepted.status_code == 200, accepted.text
    wait_for_state(run_id, "PAUSED", key="payment")
    assert sweep_at(kickoff + dt.timedelta(days=35, hours=1), deal_id) == [], "accepted"

    # Customer success takes over, and the customer is asked how it went.
    inbox.wait_for(to(SUCCESS, "Customer success takes over", deal_id))
    survey = link_in(inbox.wait_for(to(CUSTOMER, "How did we do?", deal_id)), SURVEY_LINK)
    assert httpx.get(survey).status_code == 200, "opening it (a mail scanner) changes nothing"
    assert keys_of(deal_id, "survey/") == []
    answered = httpx.post(survey, data={"score": "4", "comment": "Two teams waited a week"})
    assert answered.status_code == 200, answered.text
    assert httpx.post(survey, data={"score": "9"}).status_code == 409, "answered once"
    complaint = inbox.wait_for(to(SUCCESS, "Complaint to answer by", deal_id))
    assert "Two teams waited a week" in text_of(complaint)

    # Nobody answers it within two working days: the head of sales is told, once.
    late = entry_at(deal_id, keys.COMPLAINT_OPENED) + dt.timedelta(days=7)
    [escalated] = sweep_at(late, deal_id)
    assert escalated.startswith(f"{deal_id}/complaint/escalation to {HEAD_OF_SALES}"), escalated
    assert sweep_at(late + dt.timedelta(hours=1), deal_id) == [], "once"
    inbox.wait_for(to(HEAD_OF_SALES, "Complaint not answered in time", deal_id))
    said = dealflow(
        "deal", "answer-complaint", deal_id, "--answer", "Called them; two extra training days"
    ).stdout
    assert deal_id in said, said
    assert set(keys_of(deal_id, "complaint/")) == {
        "complaint/opened",
        "complaint/escalation",
        "complaint/answered",
    }
    with session_scope() as session:
        invoices = session.scalars(select(Invoice).where(Invoice.deal_id == deal_id)).all()
    for invoice in invoices:
        dealflow(
            "payments",
            "record",
            "--invoice",
            invoice.number,
            "--amount",
            str(Decimal(invoice.amount)),
        )
    inbox.wait_for(to(REP, "Paid in full", deal_id))
    wait_for_state(run_id, "COMPLETED")
    paid = entry_at(deal_id, keys.CLOSED)

    # A month later the rep is asked for a repurchase conversation, and records it.
    month = paid + dt.timedelta(days=30, hours=1)
    assert sweep_at(month - dt.timedelta(days=1), deal_id) == []
    assert sweep_at(month, deal_id) == [f"{deal_id}/repurchase/requested to {REP}"]
    asked = inbox.wait_for(to(REP, "Repurchase conversation", deal_id))
    assert f"dealflow deal repurchase {deal_id}" in text_of(asked)
    said = dealflow("deal", "repurchase", deal_id, "--note", "Wants the analytics add-on").stdout
    assert said.startswith(f"Recorded the repurchase conversation of {deal_id}"), said
    assert sweep_at(month + dt.timedelta(days=8), deal_id) == [], "recorded: no reminder"
    assert set(keys_of(deal_id, "repurchase/")) == {"repurchase/requested", "repurchase/recorded"}
    assert keys_of(deal_id, "change-request/") == ["change-request/1"]
