"""The money end to end, through the real stack: a deal is approved and invoiced, its
delivery accepted by link, its invoices go overdue on a moved clock and escalate level by
level to the right people, then it is paid and its flow run ends Completed."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.infra.links import Purpose, link_keys, verify
from dealflow.infra.records import get_deal, timeline
from harness.mail import ACCEPTANCE_LINK, SIGNING_SUBJECT, link_in, text_of, to
from harness.runs import run_state, wait_for_state
from models.settings import get_settings
from models.tables import Invoice
from tests.conftest import Inbox
from tests.support import (
    approve_via_email,
    deal_file,
    dealflow,
    newest_on_demand_run,
    prefect_http,
    submit,
)

pytestmark = pytest.mark.stack
BILLING = "billing@globex.example"
REP = "priya.natarajan@example.com"


def invoices_of(deal_id: str) -> list[Invoice]:
    with session_scope() as session:
        rows = session.scalars(
            select(Invoice).where(Invoice.deal_id == deal_id).order_by(Invoice.sequence)
        ).all()
        session.expunge_all()
        return list(rows)


def check_at(moment: dt.date) -> str:
    at = dt.datetime.combine(moment, dt.time(9), dt.UTC).isoformat()
    return dealflow("payments", "check", "--now", at).stdout


def customer_letters(inbox: Inbox, deal_id: str, subject: str) -> list[Any]:
    return inbox.matching(
        lambda m: (
            BILLING in str(m["To"])
            and subject in str(m["Subject"])
            and f"INV-{deal_id}-" in str(m["Subject"])
        )
    )


def escalations_to(inbox: Inbox, person: str, number: str) -> list[Any]:
    return inbox.matching(
        lambda m: (
            person in str(m["X-Envelope-To"])
            and "dunning" in str(m["X-Dealflow-Key"])
            and number in text_of(m)
        )
    )


def test_an_invoiced_deal_escalates_when_overdue_and_completes_when_paid(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    path, deal_id = deal_file(tmp_path, "globex.yaml")  # 240,000 USD: 30/40/30, net 45
    run_id = submit(path)
    for approver in ("tom.alvarez@example.com", "dana.whitfield@example.com"):
        approve_via_email(inbox, approver, "Approval needed", deal_id, "ok")
    approve_via_email(inbox, "lena.fischer@example.com", "Approval needed", deal_id, "ok")

    # The sales rep records the signed contract with the CLI; nothing is invoiced before.
    inbox.wait_for(to("priya.natarajan@example.com", SIGNING_SUBJECT, deal_id))
    wait_for_state(run_id, "PAUSED", key="signing")
    assert not invoices_of(deal_id), "no invoice before the contract is signed"
    future = dealflow(
        "deal",
        "sign",
        deal_id,
        "--signed-by",
        "Hank Scorpio",
        "--document",
        "GLOBEX-MSA.pdf",
        "--date",
        "2999-01-01",
        check=False,
    )
    assert future.returncode != 0 and "in the future" in future.stderr + future.stdout
    said = dealflow(
        "deal", "sign", deal_id, "--signed-by", "Hank Scorpio", "--document", "GLOBEX-MSA.pdf"
    ).stdout
    assert said.startswith(f"Recorded the contract of {deal_id} signed by Hank Scorpio"), said

    request = inbox.wait_for(to("grace.lin@example.com", "Record acceptance", deal_id))
    link = link_in(request, ACCEPTANCE_LINK)
    assert "On acceptance" in text_of(request)
    wait_for_state(run_id, "PAUSED", key="acceptance")
    assert len(invoices_of(deal_id)) == 2, "signing and kickoff invoices only, so far"
    now = dt.datetime.now(dt.UTC)
    claim = verify(link.rsplit("/", 1)[1], link_keys(), now, Purpose.ACCEPTANCE)
    assert abs(claim.expires - (now + dt.timedelta(days=120))) < dt.timedelta(hours=1)
    assert "works until" in text_of(request) and "renew-acceptance-link" in text_of(request)
    # A delivery that takes longer gets a fresh link; the first one works on meanwhile.
    said = dealflow("deal", "renew-acceptance-link", deal_id, "--by", "ops-anna").stdout
    assert said.startswith(f"Sent a fresh acceptance link for {deal_id} to Grace Lin"), said
    renewal = inbox.wait_for(to("grace.lin@example.com", "New link: record acceptance", deal_id))
    fresh = link_in(renewal, ACCEPTANCE_LINK)
    assert fresh != link and httpx.get(fresh).status_code == 200
    as_approval = httpx.post(
        link.replace("/acceptance/", "/approvals/"), data={"decision": "approve"}
    )
    assert as_approval.status_code == 403 and "not an approval link" in as_approval.text
    page = httpx.get(link)  # a mail scanner opening the link changes nothing
    assert page.status_code == 200 and "Record acceptance" in page.text
    wait_for_state(run_id, "PAUSED", key="acceptance")

    accepted = httpx.post(
        fresh, data={"note": "Signed acceptance protocol", "report": "AR-2026-117"}, timeout=30
    )
    assert accepted.status_code == 200 and "Acceptance recorded" in accepted.text
    again = httpx.post(link, data={}, timeout=30)
    assert again.status_code == 409 and "already recorded by grace.lin@example.com" in again.text
    late = dealflow("deal", "renew-acceptance-link", deal_id, check=False)
    assert (
        late.returncode == 1 and f"the acceptance of {deal_id} is already recorded" in late.stderr
    )
    inbox.wait_for(to(BILLING, "Invoice", f"{deal_id}-03"))
    wait_for_state(run_id, "PAUSED", key="payment")
    invoices = invoices_of(deal_id)
    assert [str(i.amount) for i in invoices] == ["72000.00", "96000.00", "72000.00"]
    due = max(i.due_date for i in invoices)
    numbers = [i.number for i in invoices]

    check_at(due - dt.timedelta(days=3))  # friendly reminders before the due date
    assert len(customer_letters(inbox, deal_id, "Reminder: invoice")) == 3
    check_at(due + dt.timedelta(days=7))  # the customer's 1-day level is skipped: no burst
    assert not customer_letters(inbox, deal_id, "Payment reminder")
    assert all(len(escalations_to(inbox, REP, n)) == 1 for n in numbers)
    assert all(len(escalations_to(inbox, "finance@example.com", n)) == 1 for n in numbers)
    said = check_at(due + dt.timedelta(days=7))
    assert "  Escalations: none" in said.splitlines(), said
    on_demand = newest_on_demand_run("payment-check")  # under its deployment in the UI
    assert on_demand["name"] == f"payment-check-{due + dt.timedelta(days=7)}", on_demand
    assert on_demand["state"]["message"] == said.rstrip("\n"), on_demand["state"]
    check_at(due + dt.timedelta(days=15))
    assert all(len(escalations_to(inbox, "tom.alvarez@example.com", n)) == 1 for n in numbers)
    assert not escalations_to(inbox, "dana.whitfield@example.com", numbers[0])

    paid_on = dt.date.today().isoformat()
    dealflow("payments", "record", "--invoice", numbers[0], "--amount", "72000", "--date", paid_on)
    statement = tmp_path / "statement.csv"
    statement.write_text(
        "date,amount,currency,reference\n"
        f"{paid_on},96000.00,USD,{numbers[1]}\n"
        f"{paid_on},72000.00,USD,Globex payment {numbers[2]}\n"
    )
    imported = dealflow("payments", "import", str(statement)).stdout
    assert f"{deal_id}: paid in full, closing" in imported, imported
    wait_for_state(run_id, "COMPLETED")
    assert run_state(run_id)[2] == "Paid"
    closed = inbox.wait_for(to(REP, "Paid in full", deal_id))
    assert "finance@example.com" in str(closed["Cc"])
    check_at(due + dt.timedelta(days=31))
    assert not escalations_to(inbox, "dana.whitfield@example.com", numbers[0]), "paid: no more"

    with session_scope() as session:
        deal = get_deal(session, deal_id)
        events = [(t.key, t.event) for t in timeline(session, deal_id)]
    assert deal.stage == "closed" and deal.outcome == "paid"
    assert sum(key.startswith("payment/") for key, _ in events) == 3
    assert any(
        key == "accepted" and "acceptance report AR-2026-117: Signed acceptance protocol" in e
        for key, e in events
    )
    # The acceptance handed the deal to customer success, and the customer got the survey.
    assert "success/handed-over" in [key for key, _ in events]
    assert inbox.matching(lambda m: f"deal/{deal_id}/survey/request" == str(m["X-Dealflow-Key"]))
    aging = prefect_http().get("artifacts/aging-report/latest")
    assert aging.status_code == 200 and aging.json()["type"] == "table"
    # What ops staff see of the whole deal in the Prefect UI: a task run per step done
    # (34 before signing was a step, 40 before customer success; 51 when every pass
    # called every step again) and a board version per change.
    with prefect_http() as api:
        of_the_run = {"flow_runs": {"id": {"any_": [run_id]}}}
        steps = api.post("task_runs/count", json=of_the_run).json()
        versions = api.post("artifacts/filter", json=of_the_run).json()
    assert steps <= 41, steps
    by_key = Counter(version["key"] for version in versions)
    assert by_key[f"deal-{deal_id.lower()}-raci"] == 1, by_key
    assert by_key[f"deal-{deal_id.lower()}"] <= 8, by_key


def test_the_finance_page_needs_a_login_and_records_payments(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    from tests.finance_support import form_token_of, invoiced_deal

    _deal, [number] = invoiced_deal(dt.date(2027, 3, 10))
    base = f"{stack.config.web_url}/finance"
    assert httpx.get(base).status_code == 401
    assert httpx.get(base, auth=("finance", "wrong")).status_code == 401
    login = ("finance", get_settings().finance_logins()["finance"])
    page = httpx.get(base, auth=login)
    assert page.status_code == 200 and number in page.text
    token = form_token_of(page.text, "/finance/payments")

    forged = httpx.post(
        f"{base}/payments",
        auth=login,
        data={"form_token": "x", "invoice": number, "amount": "100.00"},
    )
    assert forged.status_code == 403
    paid = httpx.post(
        f"{base}/payments",
        auth=login,
        data={"form_token": token, "invoice": number, "amount": "100.00", "reference": "W1"},
    )
    assert paid.status_code == 200 and "100.00 EUR applied" in paid.text
    wrong = httpx.post(
        f"{base}/payments",
        auth=login,
        data={"form_token": token, "invoice": "INV-NONE-01", "amount": "1.00"},
    )
    assert wrong.status_code == 400 and "there is no invoice INV-NONE-01" in wrong.text

    csv = f"date,amount,reference\n2026-11-20,200.00,{number}\n2026-11-20,5.00,no number\n"
    files = {"statement": ("bank.csv", csv.encode(), "text/csv")}
    token = form_token_of(page.text, "/finance/statements")
    imported = httpx.post(f"{base}/statements", auth=login, data={"form_token": token}, files=files)
    assert imported.status_code == 200 and "1 payment(s) applied" in imported.text
    assert "not matched: no invoice number" in imported.text
    again = httpx.post(f"{base}/statements", auth=login, data={"form_token": token}, files=files)
    assert "1 line(s) already imported" in again.text

    token = form_token_of(page.text, "/finance/check")
    started = httpx.post(f"{base}/check", auth=login, data={"form_token": token}, timeout=30)
    assert started.status_code == 200 and "Payment check started" in started.text


def test_each_finance_form_has_a_token_of_its_own_that_expires(stack: Any) -> None:
    from tests.finance_support import form_token_of, invoiced_deal
    from web.form_tokens import FORM_TOKEN_SECONDS, form_token

    _deal, [number] = invoiced_deal(dt.date(2027, 3, 10))
    base = f"{stack.config.web_url}/finance"
    login = ("finance", get_settings().finance_logins()["finance"])
    first, second = httpx.get(base, auth=login).text, httpx.get(base, auth=login).text
    payments = form_token_of(first, "/finance/payments")
    assert payments != form_token_of(second, "/finance/payments"), "new at every page view"
    dispute = f"/finance/invoices/{number}/dispute"
    assert (
        len({payments, form_token_of(first, "/finance/check"), form_token_of(first, dispute)}) == 3
    )

    def pay(token: str) -> httpx.Response:
        fields = {"form_token": token, "invoice": "INV-NONE-01", "amount": "1.00"}
        return httpx.post(f"{base}/payments", auth=login, data=fields)

    def refused(response: httpx.Response) -> bool:
        return response.status_code == 403 and "This form has expired" in response.text

    # Another form's token, another user's, or one issued too long ago: nothing is done.
    assert refused(pay(form_token_of(first, "/finance/check")))
    assert refused(pay(form_token_of(first, dispute)))
    assert refused(pay(form_token("fiona", "/finance/payments")))
    now = dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(seconds=FORM_TOKEN_SECONDS + 60)
    assert refused(pay(form_token("finance", "/finance/payments", now=old)))
    assert refused(pay(payments[:-2] + "AA"))
    assert refused(pay("\u00b2." + payments.split(".", 1)[1]))  # a digit, not ASCII
    # The page's own token of that form works, also from the page before.
    nearly_old = now - dt.timedelta(seconds=FORM_TOKEN_SECONDS - 120)
    for token in (payments, form_token("finance", "/finance/payments", now=nearly_old)):
        response = pay(token)
        assert response.status_code == 400 and "there is no invoice INV-NONE-01" in response.text
