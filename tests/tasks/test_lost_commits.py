"""An answer Prefect took while the answerer's own commit was lost is recorded by the run.

Whoever answers records the answer and resumes the run in one transaction. If Prefect's
server dies after it took the resume but before it said so, that transaction rolls back
while the run goes on with the answer (the kill test on the production path hit this):
the run's check of the answer records it, once, so the deal says what its run did."""

from __future__ import annotations

import datetime as dt

import pytest

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.records import get_approval, get_deal, timeline
from models import keys
from models.decision import GateDecision
from models.finance import DeliveryAcceptance
from models.keys import ACCEPTANCE_WAIT, SIGNING_WAIT, gate_wait
from models.signing import ContractSigned
from tasks.answers import keep_proven_answer
from tasks.approvals import plan_approvals
from tests.tasks.test_signing import stored

pytestmark = pytest.mark.usefixtures("database_url")
MANAGER = "mara.keller@example.com"


def run_of(deal_id: str) -> str:
    with session_scope() as session:
        run = get_deal(session, deal_id).flow_run_id
    assert run is not None
    return run


def test_a_gate_decision_the_web_service_did_not_commit_is_recorded_once() -> None:
    deal_id = stored()
    plan_approvals.fn(deal_id)
    decision = GateDecision(
        approved=True,
        decided_by=MANAGER,
        decided_by_name="Mara Keller",
        comment="mid-click",
        decided_at=utcnow(),
    )
    assert keep_proven_answer(deal_id, run_of(deal_id), gate_wait("manager"), decision)
    assert not keep_proven_answer(deal_id, run_of(deal_id), gate_wait("manager"), decision)
    with session_scope() as session:
        row = get_approval(session, deal_id, "manager")
        assert row is not None and row.decision == "approved"
        assert (row.decided_by, row.decided_by_name, row.comment) == (
            MANAGER,
            "Mara Keller",
            "mid-click",
        )
        director = get_approval(session, deal_id, "director")
        assert director is not None and director.decision is None


def test_a_signed_contract_and_an_acceptance_not_committed_are_recorded_once() -> None:
    deal_id = stored()
    run = run_of(deal_id)
    signed = ContractSigned(
        signed_by="Li Wei",
        signed_on=dt.date(2026, 3, 2),
        document="ACME-2026-014-signed.pdf",
        recorded_by="sam.rivera@example.com",
    )
    accepted = DeliveryAcceptance(
        accepted_by="priya.nair@example.com", accepted_on=dt.date(2026, 4, 1), report="AR-7"
    )
    for step, answer in ((SIGNING_WAIT, signed), (ACCEPTANCE_WAIT, accepted)):
        assert keep_proven_answer(deal_id, run, step, answer)
        assert not keep_proven_answer(deal_id, run, step, answer)
    with session_scope() as session:
        entries = {t.key: t for t in timeline(session, deal_id)}
        deal = get_deal(session, deal_id)
    assert entries[keys.SIGNED].actor == "sam.rivera@example.com"
    assert "by Li Wei on 2026-03-02, document ACME-2026-014-signed.pdf" in (
        entries[keys.SIGNED].event
    )
    assert entries[keys.ACCEPTED].actor == "priya.nair@example.com"
    assert "acceptance report AR-7" in entries[keys.ACCEPTED].event
    assert deal.stage == "accepted"


def test_an_answer_to_a_run_that_no_longer_carries_the_deal_is_not_recorded() -> None:
    deal_id = stored()
    plan_approvals.fn(deal_id)
    decision = GateDecision(approved=True, decided_by=MANAGER, decided_at=utcnow())
    assert not keep_proven_answer(deal_id, "another-run", gate_wait("manager"), decision)
    with session_scope() as session:
        row = get_approval(session, deal_id, "manager")
        assert row is not None and row.decision is None
