"""Delivery progress (#17 item 3) at the level of its tasks, on a real database and the
real SMTP inbox: the rep's weekly report (mailed to the customer's contact on request),
the sla-sweep's reminder after a missed week and escalation after two, nothing once the
customer accepted, change requests with their decision; the clock moved by ``now``."""

from __future__ import annotations

import datetime as dt

import pytest

from dealflow.infra.db import session_scope
from dealflow.infra.records import timeline
from harness.mail import text_of, to
from models import keys
from models.delivery_weeks import week_at, weeks_ended
from tasks.deadlines import follow_up_delivery_progress
from tasks.delivery_progress import ProgressError, record_change_request, record_progress
from tasks.progress_follow_up import open_deliveries
from tests.conftest import Inbox
from tests.tasks.test_signing import note, stored

pytestmark = pytest.mark.usefixtures("database_url")
KICKOFF = dt.datetime(2026, 4, 6, 9, 0, tzinfo=dt.UTC)
REP = "sam.rivera@example.com"
MANAGER = "mara.keller@example.com"  # sales_manager of the EMEA team: progress_escalate_to


def day(days: float) -> dt.datetime:
    return KICKOFF + dt.timedelta(days=days)


def kicked_off(example: str = "acme.json") -> str:
    deal_id = stored(example)
    note(deal_id, keys.KICKOFF, "delivery_kickoff", KICKOFF)
    return deal_id


def sweep(deal_id: str, at: dt.datetime) -> list[str]:
    return [str(done) for done in follow_up_delivery_progress.fn(at) if done.deal_id == deal_id]


def entries(deal_id: str, prefix: str) -> list[str]:
    with session_scope() as session:
        return [t.key for t in timeline(session, deal_id) if t.key.startswith(prefix)]


def test_weeks_count_from_the_kickoff() -> None:
    assert weeks_ended(KICKOFF, day(-1), 7) == 0
    assert weeks_ended(KICKOFF, day(6.9), 7) == 0
    assert weeks_ended(KICKOFF, day(7), 7) == 1
    assert week_at(KICKOFF, day(0), 7) == 1
    assert week_at(KICKOFF, day(13), 7) == 2


def test_a_missed_week_reminds_the_rep_and_two_in_a_row_tell_the_manager(inbox: Inbox) -> None:
    deal_id = kicked_off()
    assert deal_id in open_deliveries()
    assert sweep(deal_id, day(6.9)) == [], "week 1 has not ended"
    reminded = f"{deal_id}/progress/week-1/reminder to {REP}"
    assert sweep(deal_id, day(7.1)) == [reminded]
    assert sweep(deal_id, day(8)) == [], "once"
    escalated = f"{deal_id}/progress/week-2/escalation to {MANAGER}"
    assert sweep(deal_id, day(14.1)) == [escalated]
    assert sweep(deal_id, day(15)) == [], "once"

    [reminder] = inbox.matching(to(REP, "Progress report for week 1 due", deal_id))
    text = text_of(reminder)
    assert "Week 1 of the delivery of" in text and "2026-04-13" in text
    assert f'dealflow deal progress {deal_id} --note "..."' in text
    [escalation] = inbox.matching(to(MANAGER, "Progress reports missing", deal_id))
    assert REP in str(escalation["Cc"])
    assert "Please follow up with Sam Rivera." in text_of(escalation)
    assert entries(deal_id, "progress/") == [
        "progress/week-1/reminder",
        "progress/week-2/escalation",
    ]


def test_a_report_in_time_gets_no_follow_up_and_a_later_miss_only_a_reminder(
    inbox: Inbox,
) -> None:
    deal_id = kicked_off()
    done = record_progress(deal_id, "Hardware installed at the Hamburg depot.", now=day(2))
    assert (done.week, done.sent_to) == (1, None)
    assert sweep(deal_id, day(7.1)) == []
    record_progress(deal_id, "Drivers trained.", by="omar.haddad@example.com", now=day(9))
    assert sweep(deal_id, day(14.1)) == []
    # Week 3 missed, week 2 reported: a reminder, not the manager.
    assert sweep(deal_id, day(21.1)) == [f"{deal_id}/progress/week-3/reminder to {REP}"]
    with session_scope() as session:
        reports = {t.key: t for t in timeline(session, deal_id) if t.key.startswith("progress/")}
    assert reports["progress/week-1"].actor == REP
    assert reports["progress/week-1"].event == (
        "Progress report for delivery week 1: Hardware installed at the Hamburg depot."
    )
    assert reports["progress/week-2"].actor == "omar.haddad@example.com"
    assert not inbox.matching(to(MANAGER, "Progress reports missing", deal_id))


def test_nothing_is_followed_up_after_acceptance_or_before_kickoff(inbox: Inbox) -> None:
    accepted = kicked_off()
    note(accepted, keys.ACCEPTED, "accepted", day(3))
    assert accepted not in open_deliveries()
    assert sweep(accepted, day(30)) == []
    waiting = stored()
    assert waiting not in open_deliveries()
    assert sweep(waiting, day(30)) == []
    assert not inbox.matching(
        lambda m: (
            "Progress report" in str(m["Subject"])
            and any(d in str(m["Subject"]) for d in (accepted, waiting))
        )
    )


def test_the_report_goes_to_the_customers_contact_once(inbox: Inbox) -> None:
    deal_id = kicked_off()
    done = record_progress(
        deal_id, "Phase 1 rollout finished; phase 2 starts Monday.", to_customer=True, now=day(1)
    )
    contact = "jonas.weber@acme-logistics.example"
    assert done.sent_to == f"Jonas Weber <{contact}>"
    [mail] = inbox.matching(to(contact, "Progress report, week 1:", deal_id))
    assert REP in str(mail["Cc"])
    text = text_of(mail)
    assert "Dear Jonas Weber," in text
    assert "Phase 1 rollout finished; phase 2 starts Monday." in text
    with pytest.raises(
        ProgressError, match=f"week 1 of {deal_id} was already recorded by {REP} at"
    ):
        record_progress(deal_id, "Again", to_customer=True, now=day(2))
    assert len(inbox.matching(to(contact, "Progress report", deal_id))) == 1


def test_a_chinese_customer_reads_the_report_in_chinese(inbox: Inbox) -> None:
    deal_id = stored("xinghe.json")
    note(deal_id, keys.KICKOFF, "delivery_kickoff", KICKOFF)
    record_progress(deal_id, "第一阶段已完成。", to_customer=True, now=day(8))
    [mail] = inbox.matching(to("wang.qiang@xinghe-manufacturing.example", "", deal_id))
    assert str(mail["Subject"]).startswith("进度报告（第 2 周）")
    assert "交付第 2 周的进度报告" in text_of(mail)


def test_reports_and_change_requests_are_refused_outside_delivery() -> None:
    waiting = stored()
    with pytest.raises(ProgressError, match="not kicked off yet"):
        record_progress(waiting, "Too early", now=day(1))
    with pytest.raises(ProgressError, match="not kicked off yet"):
        record_change_request(waiting, "More trucks", "approved")
    accepted = kicked_off()
    note(accepted, keys.ACCEPTED, "accepted", day(3))
    with pytest.raises(ProgressError, match="acceptance was recorded"):
        record_progress(accepted, "Too late", now=day(4))
    deal_id = kicked_off()
    with pytest.raises(ProgressError, match="give the progress note"):
        record_progress(deal_id, "  ", now=day(1))
    with pytest.raises(ProgressError, match="longer than 2000 characters"):
        record_progress(deal_id, "x" * 2001, now=day(1))
    with pytest.raises(ProgressError, match="approved or rejected"):
        record_change_request(deal_id, "More trucks", "maybe")
    with pytest.raises(ProgressError, match="summary"):
        record_change_request(deal_id, "", "approved")
    for refused in (waiting, accepted, deal_id):
        assert entries(refused, "progress/") == entries(refused, "change-request/") == []


def test_change_requests_are_recorded_with_their_decision() -> None:
    deal_id = kicked_off()
    first = record_change_request(
        deal_id, "Add 20 trucks to the rollout", "approved", "omar.haddad@example.com", "PO 4711"
    )
    second = record_change_request(deal_id, "Move go-live by a month", "rejected")
    assert (first.number, second.number) == (1, 2)
    with session_scope() as session:
        recorded = [t for t in timeline(session, deal_id) if t.key.startswith("change-request/")]
    assert [(t.key, t.actor, t.event) for t in recorded] == [
        (
            "change-request/1",
            "omar.haddad@example.com",
            "Change request 1 approved: Add 20 trucks to the rollout (PO 4711)",
        ),
        ("change-request/2", REP, "Change request 2 rejected: Move go-live by a month"),
    ]
