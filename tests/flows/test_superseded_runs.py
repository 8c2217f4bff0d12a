"""A revision's run stops acting once a later revision is stored.

Revision 1 of a deal is rejected, and its run may still be started again afterwards: it
crashed just after recording the rejection and the sla-sweep recovers it, or someone
retries it from the Prefect UI. Once revision 2 is stored that run must not act on the
deal, which revision 2's own run carries: storing the revision cancels it in Prefect, the
sweep cancels rather than schedules it, and the run itself, started all the same, ends
without touching anything. On a real Prefect server, runner, web service and SMTP server.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.infra.records import get_deal, timeline
from dealflow.intake.submit import store_revision
from harness.mail import decide, link_in, text_of, to
from harness.runs import run_state, wait_for_state
from models.deal import DealIntake
from models.tables import Approval, SentMessage
from tasks.recovery import RECOVERED_TAG, recover_lost_runs
from tests.conftest import Inbox
from tests.faults import wait_until
from tests.support import deal_file, dealflow, submit

pytestmark = pytest.mark.stack

MANAGER = "mara.keller@example.com"
REP = "sam.rivera@example.com"
INTAKE_KEY = {"X-API-Key": "key-for-tests-0123456789"}  # conftest's


def rejected_by_the_manager(inbox: Inbox, tmp_path: Path) -> tuple[Path, str, str]:
    """A fresh deal rejected at the manager's gate from the email's link, its run ended:
    the deal file, the deal id and revision 1's run id."""
    path, deal_id = deal_file(tmp_path)
    run_1 = submit(path)
    link = link_in(inbox.wait_for(to(MANAGER, "Approval needed", deal_id)))
    assert decide(link, "reject", "5% is not enough: make it 10%").status_code == 200
    wait_for_state(run_1, "CANCELLED")
    inbox.wait_for(to(REP, "Deal rejected", deal_id))
    return path, deal_id, run_1


def revise(path: Path) -> dict[str, Any]:
    """The deal at 10% discount (what the manager asked for), written to its file."""
    data = json.loads(path.read_text())
    data["discount_percent"], data["amount"] = "10", "51498.00"  # 57,220.00 list, less 10%
    path.write_text(json.dumps(data))
    return data


def force_state(run_id: str, state: Any) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(run_id), state, force=True)


def what_a_user_sees(deal_id: str, inbox: Inbox) -> dict[str, Any]:
    """The deal as its status and the people on it know it."""
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        return {
            "deal": (deal.revision, deal.stage, deal.outcome, deal.flow_run_id, deal.waiting_on),
            "timeline": [(t.key, t.event) for t in timeline(session, deal_id)],
            "approvals": [
                (a.revision, a.gate, a.requested_at, a.decision)
                for a in session.scalars(
                    select(Approval).where(Approval.deal_id == deal_id).order_by(Approval.id)
                )
            ],
            "outbox": session.scalars(
                select(SentMessage.key)
                .where(SentMessage.deal_id == deal_id)
                .order_by(SentMessage.id)
            ).all(),
            "emails": [
                str(m["Subject"]) for m in inbox.matching(lambda m: deal_id in str(m["Subject"]))
            ],
        }


def test_revision_1s_run_started_again_after_revision_2_came_in_touches_nothing(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    """Revision 2 stored while Prefect could not be reached to start its run or cancel
    revision 1's (what a resubmission that failed after storing leaves), then revision
    1's run started again: it ends, "Superseded", having planned no route, asked nobody,
    written nothing. The manager's request for revision 2 then comes from revision 2's
    own run, and its link decides."""
    from prefect.states import Scheduled

    path, deal_id, run_1 = rejected_by_the_manager(inbox, tmp_path)
    assert store_revision(DealIntake.model_validate(revise(path))) == (2, True)
    before = what_a_user_sees(deal_id, inbox)

    force_state(run_1, Scheduled())  # the sweep's recovery of a crash; a retry in the UI
    wait_until(lambda: run_state(run_1)[2] == "Superseded", 120, "revision 1's run ended")
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        ended = client.read_flow_run(UUID(run_1)).state
    assert ended is not None and ended.type.value == "CANCELLED"
    assert "revision 1 was replaced by revision 2" in str(ended.message)
    assert what_a_user_sees(deal_id, inbox) == before, "nothing of the deal was touched"
    assert len(inbox.matching(to(MANAGER, "Approval needed", deal_id))) == 1

    # The resubmission sent again: revision 2's run asks the manager, whose link decides.
    out = dealflow("deal", "resubmit", str(path)).stdout
    assert f"Deal:     {deal_id}, revision 2" in out
    request = inbox.wait_for(
        lambda m: (
            to(MANAGER, "Approval needed", deal_id)(m)
            and "What changed since revision 1" in text_of(m)
        )
    )
    with session_scope() as session:
        run_2 = get_deal(session, deal_id).flow_run_id
    assert run_2 is not None and run_2 != run_1
    wait_for_state(run_2, "PAUSED", key="gate-manager")
    approved = decide(link_in(request), "approve", "10% works")
    assert approved.status_code == 200 and "You approved this deal" in approved.text
    assert len(inbox.matching(to(MANAGER, "Approval needed", deal_id))) == 2
    assert run_state(run_1)[2] == "Superseded"


def test_a_replaced_run_that_crashed_is_cancelled_not_scheduled_again(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    """Revision 1's run crashed just after recording the rejection. Revision 2 over HTTP
    cancels it; should Prefect not have taken that cancel (the run still Crashed when the
    sla-sweep looks), the sweep cancels it instead of scheduling it again."""
    from prefect.states import Crashed

    path, deal_id, run_1 = rejected_by_the_manager(inbox, tmp_path)
    force_state(run_1, Crashed(message="the worker was killed"))

    response = httpx.post(
        f"{stack.config.web_url}/api/deals/{deal_id}/revisions",
        json=revise(path),
        headers=INTAKE_KEY,
        timeout=60,
    )
    assert response.status_code == 201, response.text
    run_2 = response.json()["flow_run_id"]
    assert run_state(run_1)[::2] == ("CANCELLED", "Superseded"), "cancelled by the revision"
    wait_for_state(run_2, "PAUSED", key="gate-manager")

    force_state(run_1, Crashed(message="the worker was killed"))  # the cancel never reached it
    said = recover_lost_runs.fn(now=dt.datetime.now(dt.UTC), only=[UUID(run_1)])
    assert said == [
        f"cancelled deal {deal_id}'s revision 1 run ({run_1}) instead of scheduling it "
        "again: revision 2 replaced it"
    ]
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_1))
    assert run.state is not None and (run.state.type.value, run.state.name) == (
        "CANCELLED",
        "Superseded",
    )
    assert not any(tag.startswith(RECOVERED_TAG) for tag in run.tags)
    assert recover_lost_runs.fn(now=dt.datetime.now(dt.UTC), only=[UUID(run_1)]) == []

    # Revision 2 goes on alone: asked once, its run still the one waiting.
    assert run_state(run_2)[:2] == ("PAUSED", "gate-manager")
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        assert (deal.revision, deal.flow_run_id, deal.outcome) == (2, run_2, None)
        keys = [t.key for t in timeline(session, deal_id)]
    assert not any(key.startswith("run/recovered/") for key in keys)
    assert len(inbox.matching(to(MANAGER, "Approval needed", deal_id))) == 2
    assert len(inbox.matching(to(REP, "Deal rejected", deal_id))) == 1
