"""Through the real stack: an overdue gate escalates, an absent approver's gate goes to
their delegate, and the link each of them gets works."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from dealflow.infra.db import session_scope
from dealflow.infra.records import get_approval, timeline
from flows.sla_sweep import sla_sweep
from harness.mail import to
from harness.runs import wait_for_state
from tests.conftest import MATRIX, Inbox
from tests.markdown_view import as_shown
from tests.support import (
    approve_via_email,
    deal_waiting_at_manager,
    dealflow,
    newest_on_demand_run,
    prefect_http,
)

pytestmark = pytest.mark.stack


def test_an_escalated_approver_decides_and_the_deal_moves_on(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    deal_id, run_id, _ = deal_waiting_at_manager(inbox, tmp_path)
    with session_scope() as session:
        row = get_approval(session, deal_id, "manager")
        assert row is not None and row.requested_at is not None
        asked = row.requested_at

    # As ops staff run it, on a moved clock: a run of the sla-sweep deployment.
    at = asked + dt.timedelta(days=14)
    at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    done = dealflow("sla", "sweep", "--now", at.isoformat()).stdout
    assert f"{deal_id}/manager: escalation to victor.stone@example.com" in done.splitlines()
    swept = newest_on_demand_run("sla-sweep")
    assert swept["name"] == f"sla-sweep-{at.astimezone(dt.UTC):%Y-%m-%dT%H:%MZ}", swept["name"]
    assert swept["state"]["message"] == done.rstrip("\n")
    board = prefect_http().get(f"artifacts/deal-{deal_id.lower()}/latest")
    shown = as_shown(board.json()["data"])
    assert "Waiting on: Victor Stone" in shown, "the board shows the new holder"
    assert board.json()["flow_run_id"] == run_id, "posted by the sweep, shown on the deal's run"

    approve_via_email(
        inbox, "victor.stone@example.com", "Escalated to you", deal_id, "Covering for Mara"
    )
    inbox.wait_for(to("dana.whitfield@example.com", "Approval needed", deal_id))
    wait_for_state(run_id, "PAUSED", key="gate-director")
    with session_scope() as session:
        decided = next(t for t in timeline(session, deal_id) if t.key == "gate/manager/decided")
    assert decided.actor == "victor.stone@example.com"
    assert "approved by Victor Stone" in decided.event and decided.comment == "Covering for Mara"


def test_a_delegate_decides_for_an_absent_approver(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    deal_id, _, _ = deal_waiting_at_manager(inbox, tmp_path)

    original = MATRIX.read_text()
    away = dt.date(2099, 1, 5)
    MATRIX.write_text(
        original
        + f"\ndelegations:\n  - {{from: mara, to: tom, start: {away}, end: {away}, reason: parental leave}}\n"
    )
    try:
        done = sla_sweep(now=dt.datetime(2099, 1, 5, 10, 0, tzinfo=dt.UTC))
    finally:
        MATRIX.write_text(original)
    assert f"{deal_id}/manager: delegated to tom.alvarez@example.com" in done

    approve_via_email(
        inbox, "tom.alvarez@example.com", "for Mara Keller", deal_id, "Approved for Mara"
    )
    inbox.wait_for(to("dana.whitfield@example.com", "Approval needed", deal_id))
    with session_scope() as session:
        events = {t.key: t for t in timeline(session, deal_id)}
    assert "Mara Keller is away (parental leave)" in events["gate/manager/delegated/tom"].event
    assert events["gate/manager/decided"].actor == "tom.alvarez@example.com"
