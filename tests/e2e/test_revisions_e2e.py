"""Revise and resubmit, end to end: a deal rejected from the manager's email link is
changed and submitted again as revision 2; its own run asks every gate again by email,
the approvers are shown what changed, and approving all three gates hands it off. On a
real Prefect server, a real SMTP server and real HTTP."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.infra.records import get_deal
from harness.mail import decide, link_in, sign_from_email, text_of, to
from harness.runs import wait_for_state
from models.tables import DealRevision, SentMessage
from tests.conftest import Inbox
from tests.support import approve_via_email, deal_file, dealflow, prefect_http, submit

pytestmark = pytest.mark.stack

MANAGER, DIRECTOR, LEGAL = (
    "mara.keller@example.com",
    "dana.whitfield@example.com",
    "lena.fischer@example.com",
)
REP = "sam.rivera@example.com"
CHANGED = "amount: 54,359.00 EUR -> 51,498.00 EUR"


def resubmit(path: Path) -> tuple[str, str]:
    """Resubmit via the CLI; the flow run id it printed and its output."""
    out = dealflow("deal", "resubmit", str(path)).stdout
    match = re.search(r"/runs/flow-run/([0-9a-f-]{36})", out)
    assert match, out
    return match.group(1), out


def test_a_rejected_deal_is_revised_and_approved_from_the_new_emails(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    path, deal_id = deal_file(tmp_path)
    run_1 = submit(path)

    # The manager rejects revision 1 from the email's link.
    link_1 = link_in(inbox.wait_for(to(MANAGER, "Approval needed", deal_id)))
    rejected = decide(link_1, "reject", "5% is not enough: make it 10%")
    assert rejected.status_code == 200, rejected.text
    wait_for_state(run_1, "CANCELLED")
    inbox.wait_for(to(REP, "Deal rejected", deal_id))

    # Unchanged, it is refused; with 10% discount it is revision 2, with a run of its own.
    unchanged = dealflow("deal", "resubmit", str(path), check=False)
    assert unchanged.returncode == 1
    assert "unchanged since revision 1, which was rejected" in unchanged.stderr
    data = json.loads(path.read_text())
    data["discount_percent"], data["amount"] = "10", "51498.00"  # 57,220.00 list, less 10%
    path.write_text(json.dumps(data))
    run_2, out = resubmit(path)
    assert f"Deal:     {deal_id}, revision 2" in out
    assert run_2 != run_1
    assert prefect_http().get(f"flow_runs/{run_2}").json()["name"] == f"deal-{deal_id}-r2"
    again, out_again = resubmit(path)  # a retry: the same run
    assert again == run_2 and "(already submitted)" in out_again

    # Revision 2's request reaches the manager (not deduplicated against revision 1's),
    # and shows what changed, in the email and on the page.
    inbox.wait_for(lambda m: to(MANAGER, "Approval needed", deal_id)(m) and CHANGED in text_of(m))
    requests = inbox.matching(to(MANAGER, "Approval needed", deal_id))
    assert len(requests) == 2
    request_2 = requests[-1]
    assert "What changed since revision 1" in text_of(request_2, "plain")
    assert "What changed since revision 1" in text_of(request_2, "html")
    assert "discount: 5% -> 10%" in text_of(request_2, "plain")
    assert "discount: 5% -&gt; 10%" in text_of(request_2, "html")
    link_2 = link_in(request_2)
    assert link_2 != link_1
    page = httpx.get(link_2, timeout=60)
    assert page.status_code == 200
    assert "What changed since revision 1" in page.text and "51,498.00 EUR" in page.text
    old_page = decide(link_1, "approve", "late click on the old link")
    assert "You approved this deal" not in old_page.text, "revision 1's link decides nothing"

    # Every gate approved from revision 2's emails; the deal is handed off.
    wait_for_state(run_2, "PAUSED", key="gate-manager")
    assert decide(link_2, "approve", "10% works").status_code == 200
    director = approve_via_email(inbox, DIRECTOR, "Approval needed", deal_id, "fine")
    assert "What changed since revision 1" in httpx.get(director, timeout=60).text
    approve_via_email(inbox, LEGAL, "Approval needed", deal_id, "standard contract")
    sign_from_email(inbox, REP, deal_id)
    inbox.wait_for(to("omar.haddad@example.com", "Delivery kickoff", deal_id))
    wait_for_state(run_2, "PAUSED", key="acceptance")

    with session_scope() as session:
        deal = get_deal(session, deal_id)
        assert (deal.revision, deal.flow_run_id, deal.outcome) == (2, run_2, "handed_off")
        kept = session.scalars(select(DealRevision).where(DealRevision.deal_id == deal_id)).all()
        assert [(r.revision, r.outcome, r.flow_run_id) for r in kept] == [(1, "rejected", run_1)]
        requests_sent = session.scalars(
            select(SentMessage.key).where(
                SentMessage.deal_id == deal_id, SentMessage.kind == "approval-request"
            )
        ).all()
        assert sorted(requests_sent) == sorted(
            [
                f"deal/{deal_id}/gate/manager/request",
                f"deal/{deal_id}/r2/gate/manager/request",
                f"deal/{deal_id}/r2/gate/director/request",
                f"deal/{deal_id}/r2/gate/legal/request",
            ]
        )
    status = dealflow("deal", "status", deal_id).stdout
    assert "Revisions:   2 (this is revision 2)" in status
    assert f"changed {CHANGED}" in status


def test_a_revision_of_a_deal_submitted_early_is_not_asked_its_stages_again(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    """Its stage reports were given to revision 1's run; revision 2's run holds none, and
    must go to its gates rather than wait for a report the rep cannot give again."""
    path, deal_id = deal_file(tmp_path, stage="quote")
    run_1 = submit(path)
    wait_for_state(run_1, "PAUSED", key="stage-quote")
    dealflow("deal", "report", deal_id, "--note", "Quote accepted")
    link = link_in(inbox.wait_for(to(MANAGER, "Approval needed", deal_id)))
    assert decide(link, "reject", "which depot first?").status_code == 200
    wait_for_state(run_1, "CANCELLED")

    data = json.loads(path.read_text())
    data["notes"] = "Hamburg depot first, then Bremen."
    path.write_text(json.dumps(data))
    run_2, _ = resubmit(path)
    inbox.wait_for(
        lambda m: (
            to(MANAGER, "Approval needed", deal_id)(m)
            and "What changed since revision 1" in text_of(m)
        )
    )
    wait_for_state(run_2, "PAUSED", key="gate-manager")
