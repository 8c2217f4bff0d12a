"""A deal submitted before it was won: lead screening, needs discovery and quote are
tracked on the same run, each reported by the sales rep, then the contract gates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from dealflow.infra.db import session_scope
from dealflow.infra.records import get_deal, timeline
from harness.mail import to
from harness.runs import run_state, wait_for_state
from tests.conftest import Inbox
from tests.support import deal_file, dealflow, submit

pytestmark = pytest.mark.stack


def test_an_early_deal_goes_through_its_stages_then_its_gates(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    path, deal_id = deal_file(tmp_path, stage="lead_screening")
    run_id = submit(path)
    wait_for_state(run_id, "PAUSED", key="stage-lead-screening")
    status = dealflow("deal", "status", deal_id).stdout
    assert "Stage:       lead_screening" in status and "Waiting on:  Sam Rivera" in status

    missing = dealflow("deal", "report", deal_id, check=False)
    assert missing.returncode == 1
    assert "lead_screening: give --score (or --lost if the deal is lost)" in missing.stderr

    screened = dealflow("deal", "report", deal_id, "--score", "85", "--note", "Budget confirmed")
    assert "grade A" in screened.stdout
    wait_for_state(run_id, "PAUSED", key="stage-needs-discovery")
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    dealflow("deal", "report", deal_id, "--visit-date", yesterday, "--note", "Met the fleet team")
    wait_for_state(run_id, "PAUSED", key="stage-quote")
    dealflow("deal", "report", deal_id, "--note", "Quote accepted")

    inbox.wait_for(to("mara.keller@example.com", "Approval needed", deal_id))
    wait_for_state(run_id, "PAUSED", key="gate-manager")
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        events = [(t.key, t.event, t.comment) for t in timeline(session, deal_id)]
    assert deal.grade == "A"
    reported = [e for e in events if e[0].endswith("/reported")]
    assert [e[0] for e in reported] == [
        "stage/lead_screening/reported",
        "stage/needs_discovery/reported",
        "stage/quote/reported",
    ]
    assert "score 85, grade A" in reported[0][1] and reported[0][2] == "Budget confirmed"
    assert "visit on" in reported[1][1]

    not_waiting = dealflow("deal", "report", deal_id, "--note", "again", check=False)
    assert not_waiting.returncode == 1
    assert "is not waiting for a stage report (it is at approval:manager)" in not_waiting.stderr


def test_a_lead_lost_at_screening_closes_the_deal(stack: Any, tmp_path: Path) -> None:
    path, deal_id = deal_file(tmp_path, stage="lead_screening")
    run_id = submit(path)
    wait_for_state(run_id, "PAUSED", key="stage-lead-screening")
    dealflow("deal", "report", deal_id, "--lost", "--note", "Chose a competitor")
    wait_for_state(run_id, "CANCELLED")
    assert run_state(run_id)[2] == "Lost"
    with session_scope() as session:
        deal = get_deal(session, deal_id)
    assert deal.outcome == "lost" and deal.outcome_reason == "Chose a competitor"
    assert deal.stage == "lost"
