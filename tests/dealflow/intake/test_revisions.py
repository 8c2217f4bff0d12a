"""Revise and resubmit: a rejected deal submitted again, changed, is its next revision.

Through the real parts below Prefect: the intake's checks and storage, the tasks that plan
the route, ask the approvers and record a rejection (their bodies, as the flow runs them),
Dealflow's database on both backends and a real SMTP server. The run itself (its name, its
idempotency key) is covered by tests/e2e/test_revisions_e2e.py and the key tests.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from dealflow.infra.db import session_scope
from dealflow.infra.records import get_approval, get_deal
from dealflow.intake.status import deal_report, format_report
from dealflow.intake.submit import (
    RevisionRefused,
    UnknownDeal,
    check_revision,
    stop_replaced_runs,
    store_deal,
    store_revision,
)
from harness.mail import text_of, to
from models.deal import DealIntake
from models.decision import GateDecision
from models.gates import GatePlan
from models.stage_report import RunPlan
from models.tables import Approval, DealRevision, SentMessage
from tasks.approvals import announce_rejection, plan_approvals, record_decision, request_approval
from tasks.stages import plan_run
from tests.conftest import Inbox
from tests.support import fresh_deal

MANAGER = "mara.keller@example.com"
REP = "sam.rivera@example.com"
RUN_1, RUN_2 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"


def cheaper(intake: DealIntake) -> DealIntake:
    """The deal at 10% discount instead of 5% (what the manager asked for)."""
    data: dict[str, Any] = intake.model_dump(mode="json")
    data["discount_percent"] = "10"
    data["amount"] = str((intake.list_total * Decimal("0.90")).quantize(Decimal("0.01")))
    return DealIntake.model_validate(data)


def started(intake: DealIntake, run_id: str) -> list[GatePlan]:
    """What submit and the flow do up to the first gate: store, note the run, plan, ask."""
    with session_scope() as session:
        get_deal(session, intake.deal_id).flow_run_id = run_id
    gates = plan_approvals.fn(intake.deal_id)
    request_approval.fn(intake.deal_id, gates[0], run_id)
    return gates


def decide_gate(deal_id: str, gate: GatePlan, comment: str, *, approved: bool = False) -> None:
    """What the approval page and then the resumed flow do with the assignee's decision."""
    with session_scope() as session:
        row = get_approval(session, deal_id, gate.name)
        assert row is not None
        decision = GateDecision(
            approved=approved,
            decided_by=row.assignee_email,
            decided_by_name=row.assignee_name,
            comment=comment,
            decided_at=dt.datetime.now(dt.UTC),
        )
        row.decision = "approved" if approved else "rejected"
        row.decided_by, row.decided_by_name = row.assignee_email, row.assignee_name
        row.comment, row.decided_at = comment, decision.decided_at
    record_decision.fn(deal_id, gate, decision)
    if not approved:
        announce_rejection.fn(deal_id, gate)


def reject_first_gate(deal_id: str, gate: GatePlan, comment: str) -> None:
    decide_gate(deal_id, gate, comment)


def test_a_rejected_deal_is_revised_its_route_planned_again_and_the_approver_told_what_changed(
    database_url: str, inbox: Inbox
) -> None:
    intake = DealIntake.model_validate(fresh_deal())
    deal_id = intake.deal_id
    assert store_deal(intake) is True
    gates = started(intake, RUN_1)

    # Not rejected yet: a revision is refused, and nothing is stored.
    with pytest.raises(
        RevisionRefused, match=r"is not rejected \(it is approval:manager, revision 1\)"
    ):
        store_revision(cheaper(intake))
    reject_first_gate(deal_id, gates[0], "5% is not enough, make it 10%")

    # Rejected: the same content again is refused, a changed one is revision 2, once.
    with pytest.raises(RevisionRefused, match="unchanged since revision 1, which was rejected"):
        check_revision(intake)
    with pytest.raises(RevisionRefused, match="unchanged since revision 1"):
        store_revision(intake)
    assert store_revision(cheaper(intake), "HTTP, test-crm") == (2, True)
    assert store_revision(cheaper(intake)) == (2, False), "a retry is the same revision"
    check_revision(cheaper(intake))  # a retry passes the check too

    with session_scope() as session:
        deal = get_deal(session, deal_id)
        assert (deal.revision, deal.outcome, deal.stage, deal.flow_run_id) == (
            2,
            None,
            "submitted",
            None,
        )
        assert deal.amount == cheaper(intake).amount and deal.waiting_on is None
        kept = session.scalars(select(DealRevision).where(DealRevision.deal_id == deal_id)).all()
        assert [(r.revision, r.outcome, r.flow_run_id) for r in kept] == [(1, "rejected", RUN_1)]
        assert kept[0].payload == intake.model_dump(mode="json"), "revision 1 kept as it was"
        assert "5% is not enough" in (kept[0].outcome_reason or "")

    # The new run plans the route again and asks the manager again, for revision 2.
    gates_2 = started(cheaper(intake), RUN_2)
    assert [g.name for g in gates_2] == [g.name for g in gates]
    assert all(g.decision is None for g in gates_2), "revision 1's rejection does not carry over"
    with session_scope() as session:
        rows = session.scalars(select(Approval).where(Approval.deal_id == deal_id)).all()
        assert sorted({r.revision for r in rows}) == [1, 2]
        assert len(rows) == 2 * len(gates), "revision 1's gates stay, as history"
        outbox = session.scalars(
            select(SentMessage.key)
            .where(SentMessage.deal_id == deal_id, SentMessage.kind == "approval-request")
            .order_by(SentMessage.id)
        ).all()
        assert outbox == [
            f"deal/{deal_id}/gate/manager/request",
            f"deal/{deal_id}/r2/gate/manager/request",
        ]
    asked = inbox.matching(to(MANAGER, "Approval needed", deal_id))
    assert len(asked) == 2, "revision 2's request is sent, not taken for revision 1's"
    text = text_of(asked[1])
    assert "What changed since revision 1:" in text
    assert "amount: 54,359.00 EUR -> 51,498.00 EUR" in text
    assert "discount: 5% -> 10%" in text
    assert "What changed" not in text_of(asked[0])
    assert "What changed since revision 1" in text_of(asked[1], "html")

    # The deal's status and timeline list the revisions.
    report = deal_report(deal_id)
    assert report["revision"] == 2
    assert [(r["revision"], r["outcome"]) for r in report["revisions"]] == [
        (1, "rejected"),
        (2, None),
    ]
    assert report["revisions"][1]["changes"][:2] == [
        "amount: 54,359.00 EUR -> 51,498.00 EUR",
        "discount: 5% -> 10%",
    ]
    events = [t["event"] for t in report["timeline"]]
    assert any(e.startswith("Revision 2 submitted after revision 1 was rejected") for e in events)
    assert any("via HTTP, test-crm" in e for e in events)
    assert sum(e.startswith("Approval route") for e in events) == 2
    shown = format_report(report)
    assert "Revisions:   2 (this is revision 2)" in shown
    assert "changed amount: 54,359.00 EUR -> 51,498.00 EUR" in shown
    page = deal_page_of(report["deal_id"])
    assert "<h2>Revisions</h2>" in page and 'data-revision="1"' in page
    assert "amount: 54,359.00 EUR -&gt; 51,498.00 EUR" in page
    assert "5% is not enough, make it 10%" in page, "why revision 1 was rejected"


def deal_page_of(deal_id: str) -> str:
    """The deal's page, as its link in the Prefect UI opens it."""
    from fastapi.testclient import TestClient

    from dealflow.infra.deal_links import deal_page_token
    from web.app import app

    page = TestClient(app).get(f"/deals/{deal_id}?key={deal_page_token(deal_id)}")
    assert page.status_code == 200, page.text
    return page.text


def with_discount(intake: DealIntake, percent: int) -> DealIntake:
    data: dict[str, Any] = intake.model_dump(mode="json")
    data["discount_percent"] = str(percent)
    data["amount"] = str((intake.list_total * (100 - percent) / 100).quantize(Decimal("0.01")))
    return DealIntake.model_validate(data)


def test_each_approver_is_shown_what_changed_since_the_revision_they_saw(
    database_url: str, inbox: Inbox
) -> None:
    """Revision 1 is rejected by the director, revision 2 already by the manager: on
    revision 3 the manager sees the changes since revision 2, the director since 1."""
    director = "dana.whitfield@example.com"
    v1 = DealIntake.model_validate(fresh_deal())
    deal_id = v1.deal_id
    store_deal(v1)
    gates = started(v1, RUN_1)
    decide_gate(deal_id, gates[0], "ok", approved=True)
    request_approval.fn(deal_id, gates[1], RUN_1)
    decide_gate(deal_id, gates[1], "too low a margin")
    assert store_revision(with_discount(v1, 20)) == (2, True)
    gates = started(with_discount(v1, 20), RUN_2)
    decide_gate(deal_id, gates[0], "20% is too much")
    assert store_revision(with_discount(v1, 8)) == (3, True)
    gates = started(with_discount(v1, 8), "33333333-3333-3333-3333-333333333333")

    to_manager = text_of(inbox.matching(to(MANAGER, "Approval needed", deal_id))[-1])
    assert "This is revision 3 of a deal rejected before." in to_manager
    assert "What changed since revision 2:" in to_manager and "discount: 20% -> 8%" in to_manager
    decide_gate(deal_id, gates[0], "8% is fine", approved=True)
    request_approval.fn(deal_id, gates[1], "33333333-3333-3333-3333-333333333333")
    asked = inbox.matching(to(director, "Approval needed", deal_id))
    assert len(asked) == 2, "asked on revisions 1 and 3; revision 2 never reached the director"
    assert "What changed since revision 1:" in text_of(asked[-1])
    assert "discount: 5% -> 8%" in text_of(asked[-1])
    report = deal_report(deal_id)
    assert [(r["revision"], r["outcome"]) for r in report["revisions"]] == [
        (1, "rejected"),
        (2, "rejected"),
        (3, None),
    ]
    assert [r["changes"][1] for r in report["revisions"][1:]] == [
        "discount: 5% -> 20%",
        "discount: 20% -> 8%",
    ]


def test_the_same_revision_sent_twice_at_once_is_stored_once(
    database_url: str, inbox: Inbox
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    intake = DealIntake.model_validate(fresh_deal())
    store_deal(intake)
    reject_first_gate(intake.deal_id, started(intake, RUN_1)[0], "too expensive")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: store_revision(cheaper(intake)), range(4)))
    assert sorted(results) == [(2, False), (2, False), (2, False), (2, True)]
    with session_scope() as session:
        assert get_deal(session, intake.deal_id).revision == 2
        kept = session.scalars(
            select(DealRevision.revision).where(DealRevision.deal_id == intake.deal_id)
        ).all()
        assert kept == [1]


def test_a_revision_of_an_unknown_deal_is_refused(database_url: str) -> None:
    intake = DealIntake.model_validate(fresh_deal())
    with pytest.raises(UnknownDeal, match=f"there is no deal {intake.deal_id} to revise"):
        check_revision(intake)
    with pytest.raises(UnknownDeal, match="submit it first"):
        store_revision(intake)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(DealRevision)) == 0


INTAKE_KEY = {"X-API-Key": "key-for-tests-0123456789"}  # conftest's


def test_the_intake_api_refuses_a_revision_with_a_clear_answer(
    database_url: str, inbox: Inbox
) -> None:
    """``POST /api/deals/{id}/revisions`` in this process, with its guard: each refusal is
    decided before Prefect is asked, so none needs a Prefect server."""
    from fastapi.testclient import TestClient

    from web.app import app
    from web.guard import MAX_DEAL_BYTES, route_of

    client = TestClient(app)
    intake = DealIntake.model_validate(fresh_deal())
    deal_id = intake.deal_id
    body = cheaper(intake).model_dump(mode="json")

    def revise(data: dict[str, Any], path_id: str = deal_id, **headers: str) -> Any:
        return client.post(
            f"/api/deals/{path_id}/revisions", json=data, headers={**INTAKE_KEY, **headers}
        )

    unauthenticated = client.post(f"/api/deals/{deal_id}/revisions", json=body)
    assert unauthenticated.status_code == 401
    revision_route = route_of("POST", f"/api/deals/{deal_id}/revisions")
    assert (revision_route.area, revision_route.max_body) == ("intake", MAX_DEAL_BYTES)
    unknown = revise(body)
    assert unknown.status_code == 404, unknown.text
    assert f"there is no deal {deal_id} to revise" in unknown.json()["detail"]

    assert store_deal(intake) is True
    gates = started(intake, RUN_1)
    waiting = revise(body)
    assert waiting.status_code == 409, waiting.text
    assert "is not rejected (it is approval:manager, revision 1)" in waiting.json()["detail"]
    other = revise(body, path_id="OTHER-2026-001")
    assert other.status_code == 422
    assert other.json()["detail"][0]["loc"] == ["body", "deal_id"]

    reject_first_gate(deal_id, gates[0], "too expensive")
    unchanged = revise(intake.model_dump(mode="json"))
    assert unchanged.status_code == 409
    assert "unchanged since revision 1, which was rejected" in unchanged.json()["detail"]
    with session_scope() as session:
        assert get_deal(session, deal_id).revision == 1, "nothing was stored"
        assert session.scalar(select(func.count()).select_from(DealRevision)) == 0


def test_the_resubmit_command_refuses_a_deal_that_is_not_rejected(
    tmp_path: Any, sqlite_url: str
) -> None:
    import json
    import os

    from tests.support import dealflow

    data = fresh_deal()
    path = tmp_path / "deal.json"
    path.write_text(json.dumps(data))
    os.environ["DEALFLOW_DATABASE_URL"] = sqlite_url
    try:
        unknown = dealflow("deal", "resubmit", str(path), check=False)
        store_deal(DealIntake.model_validate(data))
        waiting = dealflow("deal", "resubmit", str(path), check=False)
    finally:
        del os.environ["DEALFLOW_DATABASE_URL"]
    assert unknown.returncode == 1
    assert "The revision was not submitted" in unknown.stderr
    assert f"there is no deal {data['deal_id']} to revise" in unknown.stderr
    assert waiting.returncode == 1
    assert "is not rejected (it is submitted, revision 1)" in waiting.stderr


def test_a_run_of_a_replaced_revision_is_told_so_and_its_gates_act_no_more(
    database_url: str, inbox: Inbox
) -> None:
    """What revision 1's run finds when it runs again after revision 2 was stored (the
    sla-sweep recovered it, or it was past its check when the revision came in): its
    first plan tells it to end, and its gates, read back as they were, touch nothing of
    revision 2: no route planned, no request, no rejection notice, no timeline entry."""
    intake = DealIntake.model_validate(fresh_deal())
    deal_id = intake.deal_id
    store_deal(intake)
    gates = started(intake, RUN_1)
    assert plan_run.fn(deal_id, 1, RUN_1) == RunPlan(), "revision 1's run carries the deal"
    reject_first_gate(deal_id, gates[0], "5% is not enough")
    assert store_revision(cheaper(intake)) == (2, True)
    sent_before, timeline_before = len(inbox.messages), deal_report(deal_id)["timeline"]

    assert plan_run.fn(deal_id, 1, RUN_1) == RunPlan(replaced_by=2)
    assert plan_run.fn(deal_id, 2, RUN_1).replaced_by == 2, "the run kept with revision 1"
    assert plan_run.fn(deal_id, 2, RUN_2) == RunPlan(), "revision 2's own run goes on"

    # A pass of revision 1's run that was past its first plan when revision 2 came in.
    old_gates = plan_approvals.fn(deal_id, 1)
    assert [(g.name, g.revision) for g in old_gates] == [(g.name, 1) for g in gates]
    assert old_gates[0].decision is not None and not old_gates[0].decision.approved
    record_decision.fn(deal_id, old_gates[0], old_gates[0].decision)
    announce_rejection.fn(deal_id, old_gates[0])
    request_approval.fn(deal_id, old_gates[1], RUN_1)
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        assert (deal.revision, deal.outcome, deal.stage) == (2, None, "submitted")
        assert session.scalars(
            select(Approval.revision).where(Approval.deal_id == deal_id)
        ).all() == [1] * len(gates), "no route planned for revision 2 by revision 1's run"
    assert deal_report(deal_id)["timeline"] == timeline_before
    assert len(inbox.messages) == sent_before, "no request, no second rejection notice"

    # Revision 2's own run plans its route and asks the manager.
    gates_2 = plan_approvals.fn(deal_id, 2)
    assert {g.revision for g in gates_2} == {2}
    request_approval.fn(deal_id, gates_2[0], RUN_2)
    assert len(inbox.matching(to(MANAGER, "Approval needed", deal_id))) == 2


def test_the_replaced_run_is_left_to_its_own_check_when_prefect_cannot_be_reached(
    database_url: str,
) -> None:
    """Storing a revision cancels the earlier revision's run in Prefect when it can; with
    Prefect out of reach the revision stays stored and nothing is raised: the run, if
    ever started again, ends by itself (the test above)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from harness.ports import free_port

    intake = DealIntake.model_validate(fresh_deal())
    store_deal(intake)
    reject_first_gate(intake.deal_id, started(intake, RUN_1)[0], "too expensive")
    assert store_revision(cheaper(intake)) == (2, True)
    nowhere = f"http://127.0.0.1:{free_port()}/api"
    with temporary_settings(updates={PREFECT_API_URL: nowhere}):
        said = stop_replaced_runs(intake.deal_id)
    assert said == [f"revision 1's run {RUN_1}: not reached"]
    with session_scope() as session:
        assert get_deal(session, intake.deal_id).revision == 2
