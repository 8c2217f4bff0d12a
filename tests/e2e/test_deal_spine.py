"""A won deal travels manager -> director -> legal by email link, then kickoff and invoicing,
on a real Prefect server, a real SMTP server and real HTTP."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from dealflow.infra.db import session_scope
from dealflow.infra.records import approvals, get_deal, timeline
from harness.mail import (
    SIGNING_LINK,
    SIGNING_SUBJECT,
    decide,
    link_in,
    sign,
    sign_from_email,
    text_of,
    to,
)
from harness.runs import run_state, wait_for_state, wait_until_no_process
from models.matrix import load_matrix
from models.settings import get_settings
from models.tables import Invoice, SentMessage
from tests.conftest import Inbox
from tests.markdown_view import as_shown
from tests.support import approve_via_email, deal_file, dealflow, prefect_http, submit

pytestmark = pytest.mark.stack

MANAGER, DIRECTOR, LEGAL = (
    "mara.keller@example.com",
    "dana.whitfield@example.com",
    "lena.fischer@example.com",
)


def approve(inbox: Inbox, approver: str, deal_id: str, comment: str = "fine") -> str:
    return approve_via_email(inbox, approver, "Approval needed", deal_id, comment)


def test_deal_is_approved_kicked_off_and_invoiced(stack: Any, inbox: Inbox, tmp_path: Path) -> None:
    path, deal_id = deal_file(tmp_path)
    run_id = submit(path)

    request = inbox.wait_for(to(MANAGER, "Approval needed", deal_id))
    assert request["Subject"] == (
        f"Approval needed: Acme Logistics fleet telematics rollout ({deal_id}) - Sales manager approval"
    )
    for part in ("plain", "html"):
        body = text_of(request, part)
        assert "Acme Logistics GmbH" in body and "54,359.00 EUR" in body
        assert "Telematics units, installed" in body
    link = link_in(request)

    page = httpx.get(link)  # a mail scanner or the approver opening the link
    assert page.status_code == 200
    assert "Approve" in page.text and "Reject" in page.text and "<textarea" in page.text
    assert "Acme Logistics GmbH" in page.text
    assert page.headers["Referrer-Policy"] == "no-referrer", "the token must not leak onwards"
    assert page.headers["X-Frame-Options"] == "DENY"
    with session_scope() as session:
        assert approvals(session, deal_id)[0].decision is None, "GET changed nothing"

    assert decide(link, "approve", "Margin is fine").status_code == 200
    approve(inbox, DIRECTOR, deal_id, "Discount within policy")
    approve(inbox, LEGAL, deal_id, "Standard contract")

    # Approved: the run waits for the sales rep to record the contract the customer signed;
    # nothing is kicked off or invoiced before.
    signing = inbox.wait_for(to("sam.rivera@example.com", SIGNING_SUBJECT, deal_id))
    wait_for_state(run_id, "PAUSED", key="signing")
    signing_link = link_in(signing, SIGNING_LINK)
    assert httpx.get(signing_link).status_code == 200  # a scanner: changes nothing
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        assert (deal.stage, deal.waiting_on) == ("signing", "sam.rivera@example.com")
        assert not list(session.scalars(select(Invoice).where(Invoice.deal_id == deal_id)))
    waiting = dealflow("deal", "status", deal_id).stdout
    assert "Stage:       signing" in waiting
    assert "Waiting on:  Sam Rivera <sam.rivera@example.com>" in waiting
    signed = sign(signing_link, "Jonas Weber", "ACME-2026-CONTRACT.pdf")
    assert signed.status_code == 200 and "Signed contract recorded" in signed.text
    archive = inbox.wait_for(to("ines.moreau@example.com", "Archive the signed contract", deal_id))
    assert "ACME-2026-CONTRACT.pdf" in text_of(archive)

    kickoff = inbox.wait_for(to("omar.haddad@example.com", "Delivery kickoff", deal_id))
    kickoff_text = text_of(kickoff)
    assert "sam.rivera@example.com" in str(kickoff["Cc"])
    assert "by 2027-01-04" in kickoff_text, "plan confirmed 5 business days before 2027-01-11"
    assert "Jonas Weber <jonas.weber@acme-logistics.example>" in kickoff_text
    assert "Fleet platform licence, 12 months" in kickoff_text

    invoice_mail = inbox.wait_for(to("ap@acme-logistics.example", "Invoice", deal_id))
    assert "finance@example.com" in str(invoice_mail["Cc"])
    assert "54,359.00 EUR" in text_of(invoice_mail)
    acceptance = inbox.wait_for(to("omar.haddad@example.com", "Record acceptance", deal_id))
    assert "/acceptance/" in text_of(acceptance)

    wait_for_state(run_id, "PAUSED", key="acceptance")
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        invoices = list(session.scalars(select(Invoice).where(Invoice.deal_id == deal_id)))
        events = [(t.stage, t.event, t.actor, t.comment) for t in timeline(session, deal_id)]
    assert deal.stage == "delivery" and deal.outcome == "handed_off"
    assert deal.waiting_on == "omar.haddad@example.com"
    assert [(i.number, str(i.amount), i.status) for i in invoices] == [
        (f"INV-{deal_id}-01", "54359.00", "open")
    ]
    # Net 30, moved to the next business day of the team's calendar when it falls on a
    # weekend or public holiday (issued on 2 December, day 30 is New Year's Day).
    net = invoices[0].issue_date + dt.timedelta(days=30)
    calendar = load_matrix(get_settings().matrix_path).calendar("emea")
    assert invoices[0].due_date == calendar.on_or_after(net)
    assert dt.timedelta(0) <= invoices[0].due_date - net < dt.timedelta(days=5)
    decided = [e for e in events if " approved by " in e[1]]
    assert [(e[2], e[3]) for e in decided] == [
        (MANAGER, "Margin is fine"),
        (DIRECTOR, "Discount within policy"),
        (LEGAL, "Standard contract"),
    ]
    assert [e[0] for e in events[-6:]] == [
        "signing",
        "signed",  # who signed and the document, recorded by the rep
        "signed",  # administration asked to archive it
        "delivery_kickoff",
        "invoiced",
        "delivery",
    ]
    assert events[-5][1].startswith("Contract signed for the customer by Jonas Weber on ")
    assert events[-5][2] == "sam.rivera@example.com"

    status = dealflow("deal", "status", deal_id).stdout
    assert "Stage:       delivery" in status
    assert f"INV-{deal_id}-01" in status and "Margin is fine" in status

    mine = inbox.matching(lambda m: deal_id in str(m["Subject"]))
    assert len(mine) == 8, [m["Subject"] for m in mine]
    assert max(Counter(str(m["Message-ID"]) for m in mine).values()) == 1


def test_rejection_at_director_ends_the_deal_and_tells_everyone(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    path, deal_id = deal_file(tmp_path)
    run_id = submit(path)
    approve(inbox, MANAGER, deal_id)
    link = link_in(inbox.wait_for(to(DIRECTOR, "Approval needed", deal_id)))

    no_reason = decide(link, "reject", "")
    assert no_reason.status_code == 400 and "Say why you reject" in no_reason.text

    assert decide(link, "reject", "Discount breaks the floor price").status_code == 200
    notice = inbox.wait_for(to("sam.rivera@example.com", "Deal rejected", deal_id))
    assert MANAGER in str(notice["Cc"]), "whoever approved before hears of it"
    assert "Discount breaks the floor price" in text_of(notice)
    wait_for_state(run_id, "CANCELLED")
    assert run_state(run_id)[2] == "Rejected", "not green on the Runs page, and named"

    with session_scope() as session:
        deal = get_deal(session, deal_id)
        invoice_count = session.scalar(
            select(func.count()).select_from(Invoice).where(Invoice.deal_id == deal_id)
        )
    assert deal.stage == "rejected" and deal.outcome == "rejected"
    assert (
        deal.outcome_reason is not None and "Discount breaks the floor price" in deal.outcome_reason
    )
    assert invoice_count == 0
    assert not inbox.matching(to(LEGAL, "Approval needed", deal_id))

    again = decide(link, "approve")
    assert again.status_code == 409 and "Already rejected by Dana Whitfield" in again.text


def test_resubmitting_gives_the_same_run_and_no_extra_email(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    path, deal_id = deal_file(tmp_path)
    first = submit(path)
    inbox.wait_for(to(MANAGER, "Approval needed", deal_id))
    second = dealflow("deal", "submit", str(path))
    assert first in second.stdout and "already submitted" in second.stdout
    wait_for_state(first, "PAUSED", key="gate-manager")
    assert len(inbox.matching(to(MANAGER, "Approval needed", deal_id))) == 1

    changed = path.read_text().replace("Hamburg depot", "Bremen depot")
    path.write_text(changed)
    refused = dealflow("deal", "submit", str(path), check=False)
    assert refused.returncode != 0
    assert "already submitted with different content" in refused.stderr


def test_waiting_deal_holds_no_process_and_resume_sends_nothing_twice(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    path, deal_id = deal_file(tmp_path)
    run_id = submit(path)
    link = link_in(inbox.wait_for(to(MANAGER, "Approval needed", deal_id)))
    wait_for_state(run_id, "PAUSED", key="gate-manager")
    _, _, name = run_state(run_id)
    assert name == "Suspended"
    wait_until_no_process(run_id)  # a suspended deal holds no process

    assert decide(link, "approve").status_code == 200
    inbox.wait_for(to(DIRECTOR, "Approval needed", deal_id))
    wait_for_state(run_id, "PAUSED", key="gate-director")
    wait_until_no_process(run_id)

    second_click = decide(link, "approve")
    assert second_click.status_code == 409
    assert "Already approved by Mara Keller at" in second_click.text

    # The resumed run executed the flow again from the top, manager gate included...
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run_id)])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
            limit=200,
        )
    assert Counter(t.name.rsplit("-", 1)[0] for t in task_runs)["plan-approvals"] == 2
    # ...and sent no email twice.
    assert len(inbox.matching(to(MANAGER, "Approval needed", deal_id))) == 1
    with session_scope() as session:
        rows = list(session.scalars(select(SentMessage).where(SentMessage.deal_id == deal_id)))
    assert sorted(r.key.split("/", 2)[2] for r in rows) == [
        "gate/director/request",
        "gate/manager/request",
    ]
    assert all(r.status == "sent" and r.attempts == 1 for r in rows)


def test_the_run_is_named_tagged_and_shows_the_deal_board(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    path, deal_id = deal_file(tmp_path)
    run_id = submit(path)
    inbox.wait_for(to(MANAGER, "Approval needed", deal_id))
    wait_for_state(run_id, "PAUSED", key="gate-manager")
    from uuid import UUID

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
    latest = prefect_http().get(f"artifacts/deal-{deal_id.lower()}/latest")
    assert latest.status_code == 200
    assert latest.json()["flow_run_id"] == run_id
    assert run.name == f"deal-{deal_id}"
    assert {"dealflow", "team:emea"} <= set(run.tags)
    board = as_shown(latest.json()["data"])
    assert "Waiting on: Mara Keller" in board
    assert "| director | sales_director | Dana Whitfield" in board
    assert "Sales manager approval requested from Mara Keller" in board

    raci = prefect_http().get(f"artifacts/deal-{deal_id.lower()}-raci/latest")
    assert raci.status_code == 200 and raci.json()["type"] == "markdown"
    lines = as_shown(raci.json()["data"]).splitlines()
    rows = {cells[0]: cells for cells in (r.strip("| ").split(" | ") for r in lines if r[0] == "|")}
    _, responsible, accountable, *_ = rows["Contract approval"]
    assert responsible == "Sam Rivera (sales rep)"
    assert "Mara Keller (sales manager)" in accountable
    assert "Omar Haddad (delivery manager)" in rows["Delivery kickoff and plan"][1]

    # One card per key, on the deal's run: a new version only when the board changes.
    for key in (f"deal-{deal_id.lower()}", f"deal-{deal_id.lower()}-raci"):
        versions = prefect_http().post(
            "artifacts/filter", json={"artifacts": {"key": {"any_": [key]}}, "limit": 50}
        )
        assert [v["flow_run_id"] for v in versions.json()] == [run_id], key


def test_the_route_follows_the_matrix_rules_and_the_timeline_records_the_rule(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    path, deal_id = deal_file(tmp_path, "initech.json")  # 10,500 USD, no discount
    run_id = submit(path)
    approve(inbox, "tom.alvarez@example.com", deal_id)
    approve(inbox, LEGAL, deal_id)
    sign_from_email(inbox, "priya.natarajan@example.com", deal_id)
    inbox.wait_for(to("accounts@initech.example", "Invoice", deal_id))
    wait_for_state(run_id, "PAUSED", key="acceptance")
    assert not inbox.matching(to(DIRECTOR, "Approval needed", deal_id)), "the director is skipped"
    with session_scope() as session:
        route_event = next(t.event for t in timeline(session, deal_id) if "route" in t.event)
        gates = [a.gate for a in approvals(session, deal_id)]
    assert gates == ["manager", "legal"]
    assert "rule 'standard'" in route_event and "Legal review (Lena Fischer)" in route_event
