"""Gates past their limit: reminders at the right business times, then escalation, each
once, on a clock the test moves (Berlin team; Good Friday and Easter Monday 2026)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.infra.links import LinkClaim
from dealflow.infra.records import get_approval, get_deal, timeline
from dealflow.intake.submit import load_deal_file, store_deal
from models.deal import SubmittedStage
from models.settings import PROJECT_ROOT, get_settings
from models.tables import Approval, Deal
from tasks.approvals import plan_approvals, request_approval
from tasks.deadlines import follow_up_overdue_gates, follow_up_overdue_stages
from tasks.stages import open_stage, plan_run
from tests.conftest import Inbox
from web.decisions import check_claim

pytestmark = pytest.mark.usefixtures("database_url")
BERLIN = ZoneInfo("Europe/Berlin")
THURSDAY_BEFORE_EASTER = dt.datetime(2026, 4, 2, 14, 0, tzinfo=BERLIN)


def berlin(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 4, day, hour, minute, tzinfo=BERLIN)


def waiting_deal(
    requested_at: dt.datetime = THURSDAY_BEFORE_EASTER, example: str = "acme.json"
) -> str:
    """A deal whose manager was asked at ``requested_at`` and has not decided."""
    intake = load_deal_file(PROJECT_ROOT / "examples" / example)
    intake = intake.model_copy(
        update={"deal_id": f"S{uuid.uuid4().hex[:8].upper()}-{intake.deal_id.split('-')[0]}"}
    )
    store_deal(intake)
    with session_scope() as session:
        get_deal(session, intake.deal_id).flow_run_id = str(uuid.uuid4())
    manager = plan_approvals.fn(intake.deal_id)[0]
    request_approval.fn(intake.deal_id, manager, "run")
    with session_scope() as session:
        row = get_approval(session, intake.deal_id, "manager")
        assert row is not None
        row.requested_at = requested_at
        get_deal(session, intake.deal_id).waiting_since = requested_at
    return intake.deal_id


def sweep(at: dt.datetime) -> list[str]:
    return [str(done) for done in follow_up_overdue_gates.fn(at)]


def mails(inbox: Inbox, deal_id: str, word: str) -> list[Any]:
    return inbox.matching(lambda m: deal_id in str(m["Subject"]) and word in str(m["Subject"]))


def test_reminders_fall_on_business_time_then_the_gate_escalates(inbox: Inbox) -> None:
    deal_id = waiting_deal()
    # Thursday 14-17 is 3 working hours; Friday and Monday are holidays, then the weekend.
    assert sweep(berlin(6, 18)) == [], "Easter Monday evening: still 3 business hours"
    assert sweep(berlin(7, 13, 59)) == []
    assert sweep(berlin(7, 14)) == [f"{deal_id}/manager: reminder-1 to mara.keller@example.com"]
    assert sweep(berlin(7, 16)) == [], "each level once"
    assert sweep(berlin(8, 14)) == [f"{deal_id}/manager: reminder-2 to mara.keller@example.com"]
    assert sweep(berlin(9, 13)) == []
    assert sweep(berlin(9, 14)) == [f"{deal_id}/manager: escalation to victor.stone@example.com"]
    assert sweep(berlin(20, 9)) == [], "nothing after the escalation"

    reminders = mails(inbox, deal_id, "Reminder")
    assert [str(m["To"]) for m in reminders] == ["mara.keller@example.com"] * 2
    [escalation] = mails(inbox, deal_id, "Escalated to you")
    assert str(escalation["To"]) == "victor.stone@example.com"
    assert escalation["Cc"] is None, "Victor's link goes to Victor alone"
    assert "/approvals/" in escalation.get_body(("plain",)).get_content()

    with session_scope() as session:
        deal = get_deal(session, deal_id)
        row = get_approval(session, deal_id, "manager")
        events = {t.key: (t.at, t.event) for t in timeline(session, deal_id)}
    assert row is not None and row.escalated_to == "victor.stone@example.com"
    assert deal.waiting_on == "victor.stone@example.com"
    assert events["gate/manager/reminder-1/mara.keller@example.com"][0] == berlin(7, 14)
    assert "escalated to Victor Stone" in events["gate/manager/escalation"][1]
    assert (
        "after 24 business hours without a decision from Mara Keller"
        in events["gate/manager/escalation"][1]
    )


def test_levels_missed_while_no_sweep_ran_are_not_sent_in_a_burst(inbox: Inbox) -> None:
    deal_id = waiting_deal()
    assert sweep(berlin(15, 9)) == [f"{deal_id}/manager: escalation to victor.stone@example.com"]
    assert mails(inbox, deal_id, "Reminder") == []
    assert sweep(berlin(15, 10)) == []


def test_two_sweeps_at_once_send_each_level_once(inbox: Inbox) -> None:
    deal_id = waiting_deal()
    results: list[list[str]] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        barrier.wait()
        results.append(sweep(berlin(9, 15)))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(len(r) for r in results) == [0, 0, 1]
    assert len(mails(inbox, deal_id, "Escalated to you")) == 1


def test_decided_gates_and_closed_deals_get_no_follow_up(inbox: Inbox) -> None:
    decided, closed = waiting_deal(), waiting_deal()
    with session_scope() as session:
        for row in session.scalars(select(Approval).where(Approval.deal_id == decided)):
            row.decision = "approved"
        session.get_one(Deal, closed).outcome = "rejected"
    assert not [a for a in sweep(berlin(20, 9)) if decided in a or closed in a]


def matrix_with_delegation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: dt.date, end: dt.date
) -> None:
    data = yaml.safe_load((PROJECT_ROOT / "config" / "matrix.yaml").read_text())
    data["delegations"] = [
        {
            "from": "mara",
            "to": "tom",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "reason": "vacation",
        }
    ]
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("DEALFLOW_MATRIX_PATH", str(path))
    get_settings.cache_clear()


def claim_for(deal_id: str, approver: str) -> LinkClaim:
    with session_scope() as session:
        run_id = get_deal(session, deal_id).flow_run_id
    assert run_id is not None
    return LinkClaim(
        deal_id=deal_id, gate="manager", approver=approver, run_id=run_id, expires_at=2**40
    )


def test_a_request_in_flight_moves_to_the_delegate_who_may_then_decide(
    inbox: Inbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deal_id = waiting_deal()
    matrix_with_delegation(tmp_path, monkeypatch, dt.date(2026, 4, 6), dt.date(2026, 4, 17))
    assert sweep(berlin(7, 9)) == [f"{deal_id}/manager: delegated to tom.alvarez@example.com"]
    assert sweep(berlin(7, 10)) == [], "the delegate's limit starts when the gate reaches them"

    [request] = mails(inbox, deal_id, "for Mara Keller")
    assert str(request["To"]) == "tom.alvarez@example.com"
    text = request.get_body(("plain",)).get_content()
    assert text.startswith("Hello Tom Alvarez,") and "You act for Mara Keller, who is away." in text
    with session_scope() as session:
        delegated = next(t for t in timeline(session, deal_id) if "/delegated/" in t.key)
        waiting_on = get_deal(session, deal_id).waiting_on
    assert "Mara Keller is away (vacation) until 2026-04-17: Tom Alvarez" in delegated.event
    assert waiting_on == "tom.alvarez@example.com"

    assert check_claim(claim_for(deal_id, "tom.alvarez@example.com")) is None, (
        "the delegate may decide"
    )
    refused = check_claim(claim_for(deal_id, "mara.keller@example.com"))
    assert refused is not None and "assigned to Tom Alvarez" in refused.message
    # Tom's own limit: 8 business hours after the gate reached him on Tuesday 9:00.
    assert sweep(berlin(7, 17)) == [f"{deal_id}/manager: reminder-1 to tom.alvarez@example.com"]


def test_a_new_request_goes_straight_to_the_delegate(
    inbox: Inbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    matrix_with_delegation(
        tmp_path, monkeypatch, today - dt.timedelta(days=1), today + dt.timedelta(days=1)
    )
    deal_id = waiting_deal()
    [request] = mails(inbox, deal_id, "Approval needed")
    assert str(request["To"]) == "tom.alvarez@example.com"
    assert request.get_body(("plain",)).get_content().startswith("Hello Tom Alvarez,")
    assert not mails(inbox, deal_id, "for Mara Keller"), "one request, to the delegate"


def deal_at_lead_screening(
    opened: dt.datetime = THURSDAY_BEFORE_EASTER, example: str = "acme.json"
) -> str:
    intake = load_deal_file(PROJECT_ROOT / "examples" / example)
    intake = intake.model_copy(
        update={
            "deal_id": f"L{uuid.uuid4().hex[:8].upper()}-{intake.deal_id.split('-')[0]}",
            "stage": SubmittedStage.LEAD_SCREENING,
        }
    )
    store_deal(intake)
    [screening, *_] = plan_run.fn(intake.deal_id).early_stages
    open_stage.fn(intake.deal_id, screening)
    with session_scope() as session:
        deal = get_deal(session, intake.deal_id)
        deal.flow_run_id, deal.waiting_since = str(uuid.uuid4()), opened
    return intake.deal_id


def test_a_stage_past_its_limit_reminds_the_rep_then_tells_the_manager(inbox: Inbox) -> None:
    deal_id = deal_at_lead_screening()
    # 16 business hours (the handbook's 48 hours) from Thursday 14:00 before Easter:
    # 3 on Thursday, none over Easter, 8 on Tuesday, 5 on Wednesday: Wednesday 14:00.
    assert [a for a in sweep_all(berlin(8, 13, 59)) if deal_id in a] == []
    assert [a for a in sweep_all(berlin(8, 14)) if deal_id in a] == [
        f"{deal_id}/lead_screening/reminder to sam.rivera@example.com"
    ]
    assert [a for a in sweep_all(berlin(9, 17)) if deal_id in a] == [], "each level once"
    assert [a for a in sweep_all(berlin(10, 14)) if deal_id in a] == [
        f"{deal_id}/lead_screening/escalation to mara.keller@example.com"
    ]
    [behind] = mails(inbox, deal_id, "Behind plan")
    assert "sam.rivera@example.com" in str(behind["Cc"])
    assert (
        "Sam Rivera is behind plan on lead screening" in behind.get_body(("plain",)).get_content()
    )


SHANGHAI = ZoneInfo("Asia/Shanghai")


def shanghai(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def test_a_china_team_is_reminded_on_a_make_up_saturday_and_not_on_a_day_off(
    inbox: Inbox,
) -> None:
    # Asked Friday 13 February 2026 at 14:00 in Shanghai: 3 working hours that day, then
    # Saturday the 14th is a working day (调休), then the Spring Festival until the 23rd.
    deal_id = waiting_deal(shanghai(2, 13, 14), example="xinghe.json")
    assert sweep(shanghai(2, 14, 13, 59)) == []
    assert sweep(shanghai(2, 14, 14)) == [f"{deal_id}/manager: reminder-1 to zhou.min@example.com"]
    assert sweep(shanghai(2, 23, 17)) == [], "Monday the 23rd is a day off"
    assert sweep(shanghai(2, 24, 14)) == [f"{deal_id}/manager: reminder-2 to zhou.min@example.com"]
    assert sweep(shanghai(2, 25, 13, 59)) == []
    assert sweep(shanghai(2, 25, 14)) == [
        f"{deal_id}/manager: escalation to victor.stone@example.com"
    ]
    # The China team reads Simplified Chinese: its reminders' subjects start 提醒 (Reminder).
    assert [str(m["To"]) for m in mails(inbox, deal_id, "提醒")] == ["zhou.min@example.com"] * 2


def test_a_china_stage_limit_counts_the_make_up_saturday(inbox: Inbox) -> None:
    # 16 business hours from Friday 13 February 14:00: 3 on Friday, 8 on Saturday the
    # 14th, none until Tuesday the 24th, then 5: Tuesday 24 February, 14:00.
    deal_id = deal_at_lead_screening(shanghai(2, 13, 14), example="xinghe.json")
    assert [a for a in sweep_all(shanghai(2, 24, 13, 59)) if deal_id in a] == []
    assert [a for a in sweep_all(shanghai(2, 24, 14)) if deal_id in a] == [
        f"{deal_id}/lead_screening/reminder to liu.yang@example.com"
    ]
    # The rep of the China team is reminded in Chinese.
    [reminder] = inbox.matching(lambda m: deal_id in str(m["Subject"]))
    assert reminder["Subject"].startswith("提醒：")
    assert "16 个工作小时" in str(reminder.get_body(("plain",)).get_content())  # type: ignore[union-attr]


def sweep_all(at: dt.datetime) -> list[str]:
    return [
        str(done) for done in [*follow_up_overdue_stages.fn(at), *follow_up_overdue_gates.fn(at)]
    ]


def test_an_escalation_held_back_by_smtp_goes_out_with_the_next_sweep(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.deadlines import resend_failed_mail

    deal_id = waiting_deal()
    url = get_settings().resolved_database_url
    monkeypatch.setenv("DEALFLOW_SMTP_PORT", "9")
    get_settings.cache_clear()
    [held] = [a for a in sweep(berlin(20, 9)) if deal_id in a]
    assert "email held back (ConnectionRefusedError)" in held
    assert not mails(inbox, deal_id, "Escalated to you")

    monkeypatch.undo()
    monkeypatch.setenv("DEALFLOW_DATABASE_URL", url)
    get_settings.cache_clear()
    # What the next sla-sweep does first, then its follow-ups:
    assert f"deal/{deal_id}/gate/manager/escalation" in resend_failed_mail.fn()
    assert not [a for a in sweep(berlin(20, 10)) if deal_id in a]
    assert len(mails(inbox, deal_id, "Escalated to you")) == 1
