"""The repurchase follow-up (#17 item 6) at the level of its tasks, on a real database and
the real SMTP inbox, on a clock the test moves: a month after a deal is paid its sales
rep is asked once for a repurchase conversation, reminded once a week later if it is
not recorded, and not at all once it is; the record itself is refused before the deal
is paid or without a note, and made once."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest

from dealflow.answers.repurchase import MAX_NOTE, RepurchaseError, record_repurchase
from dealflow.infra.db import session_scope
from dealflow.infra.records import add_transition, get_deal, timeline
from dealflow.intake.submit import load_deal_file, store_deal
from harness.mail import text_of, to
from models import keys
from models.settings import PROJECT_ROOT
from tasks.deadlines import follow_up_repurchases
from tasks.repurchase_follow_up import open_repurchases
from tests.conftest import Inbox

pytestmark = pytest.mark.usefixtures("database_url")
BERLIN = ZoneInfo("Europe/Berlin")
REP = "sam.rivera@example.com"
PAID = dt.datetime(2026, 3, 2, 10, 0, tzinfo=BERLIN)


def stored(example: str = "acme.json") -> str:
    intake = load_deal_file(PROJECT_ROOT / "examples" / example)
    deal_id = f"R{uuid.uuid4().hex[:8].upper()}-{intake.deal_id.split('-')[0]}"
    store_deal(intake.model_copy(update={"deal_id": deal_id}))
    return deal_id


def paid(at: dt.datetime = PAID, example: str = "acme.json") -> str:
    """A deal closed as paid at ``at``, as the deal's run records it."""
    deal_id = stored(example)
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        add_transition(
            session, deal, key=keys.CLOSED, stage="closed", event="Paid", actor="dealflow", at=at
        )
        deal.outcome = "paid"
    return deal_id


def sweep(deal_id: str, at: dt.datetime) -> list[str]:
    """What the sweep's repurchase follow-up did about ``deal_id`` at ``at``."""
    return [str(done) for done in follow_up_repurchases.fn(at) if done.deal_id == deal_id]


def entries(deal_id: str) -> list[str]:
    with session_scope() as session:
        return [t.key for t in timeline(session, deal_id) if t.key.startswith("repurchase/")]


def test_the_rep_is_asked_a_month_after_payment_then_reminded_once(inbox: Inbox) -> None:
    deal_id = paid()
    month = PAID + dt.timedelta(days=30)
    assert sweep(deal_id, month - dt.timedelta(minutes=1)) == [], "not before 30 days"
    asked = f"{deal_id}/repurchase/requested to {REP}"
    assert sweep(deal_id, month) == [asked]
    assert sweep(deal_id, month + dt.timedelta(hours=6)) == [], "once"
    [request] = inbox.matching(to(REP, "Repurchase conversation:", deal_id))
    text = text_of(request)
    assert "was paid on 2026-03-02." in text
    assert f'dealflow deal repurchase {deal_id} --note "..."' in text
    assert deal_id in open_repurchases(month, 30)

    week = month + dt.timedelta(days=7)
    assert sweep(deal_id, week - dt.timedelta(minutes=1)) == []
    assert sweep(deal_id, week) == [f"{deal_id}/repurchase/reminder to {REP}"]
    assert sweep(deal_id, week + dt.timedelta(days=30)) == [], "once"
    [reminder] = inbox.matching(to(REP, "Reminder: repurchase conversation", deal_id))
    assert "is not recorded yet." in text_of(reminder)
    assert f"dealflow deal repurchase {deal_id}" in text_of(reminder)
    assert deal_id not in open_repurchases(week, 30), "nothing more for the sweep to do"
    assert entries(deal_id) == ["repurchase/requested", "repurchase/reminder"]
    with session_scope() as session:
        [requested] = [t for t in timeline(session, deal_id) if t.key == "repurchase/requested"]
    assert requested.at == month and requested.actor == "dealflow"
    assert requested.event == (
        "Paid 2026-03-02: asked Sam Rivera for a repurchase conversation with the customer"
    )


def test_a_conversation_recorded_gets_no_reminder(inbox: Inbox) -> None:
    deal_id = paid()
    month = PAID + dt.timedelta(days=30)
    assert len(sweep(deal_id, month)) == 1
    done = record_repurchase(deal_id, "  Wants 200 more sensors in Q3.  ", REP)
    assert done.new and done.by == REP and done.comment == "Wants 200 more sensors in Q3."
    assert deal_id not in open_repurchases(month, 30)
    assert sweep(deal_id, month + dt.timedelta(days=60)) == []
    assert not inbox.matching(to(REP, "Reminder: repurchase conversation", deal_id))
    assert entries(deal_id) == ["repurchase/requested", "repurchase/recorded"]


def test_a_conversation_recorded_before_the_request_is_never_asked_for(inbox: Inbox) -> None:
    deal_id = paid()
    record_repurchase(deal_id, "Talked at the acceptance meeting.")
    assert sweep(deal_id, PAID + dt.timedelta(days=90)) == []
    assert not inbox.matching(to(REP, "epurchase conversation", deal_id))


def test_the_record_is_made_once_and_a_second_hears_who_and_when() -> None:
    deal_id = paid()
    first = record_repurchase(deal_id, "Renewal of the licence discussed.")
    assert first.new and first.by == REP, "by default the deal's sales rep"
    again = record_repurchase(deal_id, "Something else", "mara.keller@example.com")
    assert not again.new
    assert (again.by, again.at, again.comment) == (
        REP,
        first.at,
        "Renewal of the licence discussed.",
    )
    with session_scope() as session:
        [entry] = [t for t in timeline(session, deal_id) if t.key == keys.REPURCHASE_RECORDED]
    assert entry.comment == "Renewal of the licence discussed." and entry.actor == REP


def test_the_record_is_refused_before_the_deal_is_paid_or_without_a_note() -> None:
    unpaid = stored()
    with pytest.raises(RepurchaseError, match=f"{unpaid} is not paid yet"):
        record_repurchase(unpaid, "Too early", REP)
    assert sweep(unpaid, PAID + dt.timedelta(days=365)) == [], "never asked before it is paid"
    deal_id = paid()
    with pytest.raises(RepurchaseError, match="--note"):
        record_repurchase(deal_id, "   ", REP)
    with pytest.raises(RepurchaseError, match=f"longer than {MAX_NOTE} characters"):
        record_repurchase(deal_id, "x" * (MAX_NOTE + 1), REP)
    assert entries(unpaid) == [] and entries(deal_id) == []


def test_a_chinese_speaking_rep_is_asked_in_chinese(inbox: Inbox) -> None:
    deal_id = paid(example="xinghe.json")
    # Shanghai keeps no summer time: 30 days there are an hour later than in Berlin.
    assert sweep(deal_id, PAID + dt.timedelta(days=30)) == []
    assert len(sweep(deal_id, PAID + dt.timedelta(days=30, hours=1))) == 1
    [request] = inbox.matching(to("liu.yang@example.com", "复购沟通", deal_id))
    assert f'dealflow deal repurchase {deal_id} --note "..."' in text_of(request)
    assert "现在是与客户沟通其后续需求的时候了。" in text_of(request)


def test_a_deal_paid_long_before_is_not_asked(inbox: Inbox) -> None:
    # The first sweep after an upgrade finds deals paid years ago: their moment passed.
    deal_id = paid(PAID - dt.timedelta(days=400))
    assert deal_id not in open_repurchases(PAID, 30)
    assert sweep(deal_id, PAID) == []
    late = paid(PAID - dt.timedelta(days=60))
    assert sweep(late, PAID) == [], "twice the 30 days: too late"
    in_time = paid(PAID - dt.timedelta(days=59))
    assert sweep(in_time, PAID) == [f"{in_time}/repurchase/requested to {REP}"]
    assert entries(deal_id) == [] and entries(late) == []
