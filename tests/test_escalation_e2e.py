"""Through the real stack: an overdue gate escalates, and the escalated approver's link works."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from dealflow.db import session_scope
from dealflow.records import get_approval, timeline
from flows.sla_sweep import sla_sweep
from tests.conftest import Inbox
from tests.support import approve_via_email, deal_file, submit, to, wait_for_state

pytestmark = pytest.mark.stack


def test_an_escalated_approver_decides_and_the_deal_moves_on(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    path, deal_id = deal_file(tmp_path)
    run_id = submit(path)
    inbox.wait_for(to("mara.keller@example.com", "Approval needed", deal_id))
    wait_for_state(run_id, "PAUSED", key="gate-manager")
    with session_scope() as session:
        row = get_approval(session, deal_id, "manager")
        assert row is not None and row.requested_at is not None
        asked = row.requested_at

    done = sla_sweep(now=asked + dt.timedelta(days=14))  # the flow, on a moved clock
    assert f"{deal_id}/manager: escalation to victor.stone@example.com" in done

    approve_via_email(
        inbox, "victor.stone@example.com", "Escalated to you", deal_id, "Covering for Mara"
    )
    inbox.wait_for(to("dana.whitfield@example.com", "Approval needed", deal_id))
    wait_for_state(run_id, "PAUSED", key="gate-director")
    with session_scope() as session:
        decided = next(t for t in timeline(session, deal_id) if t.key == "gate/manager/decided")
    assert decided.actor == "victor.stone@example.com"
    assert "approved by Victor Stone" in decided.event and decided.comment == "Covering for Mara"
