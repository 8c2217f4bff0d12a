"""Whoever reaches Prefect's API cannot decide a gate: only Dealflow's proven answers count.

The forgeries are the request Prefect's UI sends from a suspended run's Resume button
(``POST /api/flow_runs/<id>/resume`` with the gate's input form filled in).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.infra.records import get_approval, get_deal
from harness.mail import decide, text_of, to
from harness.runs import run_state, wait_for_state
from models.answers import RESUME_FORM_NOTE
from models.tables import StageTransition
from tests.conftest import Inbox
from tests.support import deal_waiting_at_manager, prefect_http

pytestmark = pytest.mark.stack  # on the production path too

MANAGER = "mara.keller@example.com"
DIRECTOR = "dana.whitfield@example.com"
SUBMITTER = "sam.rivera@example.com"  # the sales rep of examples/acme.json

FORGERIES = [
    # The submitter approving their own deal (four eyes).
    {"approved": True, "decided_by": SUBMITTER, "decided_at": dt.datetime.now(dt.UTC)},
    # Someone who is not the gate's assignee, with a made-up proof.
    {
        "approved": True,
        "decided_by": DIRECTOR,
        "decided_by_name": "Dana Whitfield",
        "decided_at": dt.datetime.now(dt.UTC),
        "proof": "0" * 64,
    },
    # The assignee's name, at a time of the caller's choosing.
    {
        "approved": True,
        "decided_by": MANAGER,
        "decided_by_name": "Mara Keller",
        "comment": "backdated",
        "decided_at": dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    },
]


def resume_from_prefect(run_id: str, run_input: dict[str, Any]) -> None:
    """What Prefect's UI sends when someone fills in the Resume form."""
    body = {
        "run_input": {k: str(v) if isinstance(v, dt.datetime) else v for k, v in run_input.items()}
    }
    for _ in range(10):  # a SQLite-backed server answers 503 while its database is busy
        response = prefect_http().post(f"flow_runs/{run_id}/resume", json=body)
        if response.status_code != 503:
            break
        time.sleep(1)
    assert response.status_code in {200, 201}, response.text
    assert response.json()["status"] == "ACCEPT", response.json()


def refusals_logged(run_id: str) -> list[str]:
    logs = prefect_http().post(
        "logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200}
    )
    if logs.status_code != 200:
        return []
    return [log["message"] for log in logs.json() if "Refused an answer" in log["message"]]


def refusals(deal_id: str) -> list[StageTransition]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(StageTransition)
                .where(
                    StageTransition.deal_id == deal_id,
                    StageTransition.key.like("answer/%/refused"),
                )
                .order_by(StageTransition.id)
            )
        )


def test_a_decision_forged_through_prefects_api_is_refused_and_the_real_link_still_works(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    deal_id, run_id, link = deal_waiting_at_manager(inbox, tmp_path)

    # Prefect's Resume form says where decisions are made.
    keyset = (
        prefect_http()
        .get(f"flow_runs/{run_id}")
        .json()["state"]["state_details"]["run_input_keyset"]
    )
    note = prefect_http().get(f"flow_runs/{run_id}/input/{keyset['description']}")
    assert RESUME_FORM_NOTE[:40] in note.text

    for attempt, forged in enumerate(FORGERIES, start=2):
        resume_from_prefect(run_id, forged)
        wait_for_state(run_id, "PAUSED", key=f"gate-manager-attempt-{attempt}")
        with session_scope() as session:
            gate = get_approval(session, deal_id, "manager")
            deal = get_deal(session, deal_id)
            assert gate is not None and gate.decision is None, "nothing recorded as decided"
            assert deal.waiting_on == MANAGER and deal.stage == "approval:manager"
        refused = refusals(deal_id)
        assert len(refused) == attempt - 1
        assert refused[-1].actor == "prefect-api"
        assert str(forged["decided_by"]) in refused[-1].event
        assert "still waits on Mara Keller" in refused[-1].event
    assert not inbox.matching(to(DIRECTOR, "Approval needed", deal_id)), "the deal did not move"
    deadline = time.monotonic() + 60  # a run's logs reach the server in batches
    while len(warned := refusals_logged(run_id)) < len(FORGERIES) and time.monotonic() < deadline:
        time.sleep(1)
    assert len(warned) == len(FORGERIES), f"the run's logs say so, once each: {warned}"

    # The real approver's link still decides the gate, and the deal goes on.
    response = decide(link, "approve", "the real decision")
    assert response.status_code == 200, response.text
    inbox.wait_for(to(DIRECTOR, "Approval needed", deal_id))
    wait_for_state(run_id, "PAUSED", key="gate-director")
    with session_scope() as session:
        gate = get_approval(session, deal_id, "manager")
        assert gate is not None and gate.decision == "approved"
        assert gate.decided_by == MANAGER and gate.comment == "the real decision"
        assert gate.decided_at is not None and gate.decided_at.year >= 2026
    assert run_state(run_id)[:2] == ("PAUSED", "gate-director")
    assert len(refusals(deal_id)) == len(FORGERIES), "each refusal noted once"
    assert len(inbox.matching(to(MANAGER, "Approval needed", deal_id))) == 1


def test_an_approval_link_works_while_its_run_waits_at_a_later_attempt(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    """The page and the CLI find a gate whatever attempt key its run waits under."""
    deal_id, run_id, link = deal_waiting_at_manager(inbox, tmp_path)
    resume_from_prefect(run_id, FORGERIES[0])
    wait_for_state(run_id, "PAUSED", key="gate-manager-attempt-2")
    response = decide(link, "reject", "not at this price")
    assert response.status_code == 200, response.text
    wait_for_state(run_id, "CANCELLED")
    rejection = inbox.wait_for(to(SUBMITTER, "Deal rejected", deal_id))
    assert "not at this price" in text_of(rejection)


def test_cancel_from_prefect_still_ends_a_waiting_deal(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    """Ops keep Prefect's Cancel: what the UI's button sends ends a suspended deal run."""
    _deal_id, run_id, _link = deal_waiting_at_manager(inbox, tmp_path)
    response = prefect_http().post(
        f"flow_runs/{run_id}/set_state",
        json={"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True},
    )
    assert response.status_code in {200, 201}, response.text
    wait_for_state(run_id, "CANCELLED", timeout=120)
