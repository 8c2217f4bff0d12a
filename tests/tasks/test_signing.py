"""Signing and archiving (#17 item 2) at the level of their tasks, on a real database and
the real SMTP inbox: the sales rep's request, the upgrade rule, and administration's
duty with its reminder and escalation on a clock the test moves."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest

from dealflow.answers.archiving import ArchiveError, archive_contract
from dealflow.answers.signing import SigningError, check_signature
from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.links import LinkError, LinkProblem, Purpose, link_keys, verify
from dealflow.infra.records import add_transition, get_deal, timeline
from dealflow.intake.submit import load_deal_file, store_deal
from harness.mail import SIGNING_LINK, SIGNING_SUBJECT, link_in, text_of, to
from models import keys
from models.settings import PROJECT_ROOT
from tasks.archive_follow_up import open_archives
from tasks.deadlines import follow_up_archiving
from tasks.handoff import plan_handoff
from tasks.signing import request_archiving, request_signing
from tests.conftest import Inbox

pytestmark = pytest.mark.usefixtures("database_url")
BERLIN = ZoneInfo("Europe/Berlin")


def stored(example: str = "acme.json") -> str:
    intake = load_deal_file(PROJECT_ROOT / "examples" / example)
    deal_id = f"G{uuid.uuid4().hex[:8].upper()}-{intake.deal_id.split('-')[0]}"
    store_deal(intake.model_copy(update={"deal_id": deal_id}))
    with session_scope() as session:
        get_deal(session, deal_id).flow_run_id = str(uuid.uuid4())
    return deal_id


def note(deal_id: str, key: str, stage: str, at: dt.datetime | None = None) -> None:
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        add_transition(
            session, deal, key=key, stage=stage, event=key, actor="sam.rivera@example.com", at=at
        )


def test_the_rep_is_asked_once_with_a_signing_link_and_the_deal_waits_on_them(
    inbox: Inbox,
) -> None:
    deal_id = stored()
    request_signing.fn(deal_id, "run-1")
    request_signing.fn(deal_id, "run-1")  # a pass of the run again: nothing more
    asked = inbox.matching(to("sam.rivera@example.com", SIGNING_SUBJECT, deal_id))
    assert len(asked) == 1
    text = text_of(asked[0])
    assert f"dealflow deal sign {deal_id}" in text
    assert "Once it is recorded, these invoices go to the customer: Full contract value." in text
    token = link_in(asked[0], SIGNING_LINK).rsplit("/", 1)[1]
    claim = verify(token, link_keys(), utcnow(), Purpose.SIGNING)
    assert (claim.deal_id, claim.gate, claim.approver, claim.run_id) == (
        deal_id,
        "signing",
        "sam.rivera@example.com",
        "run-1",
    )
    with pytest.raises(LinkError) as wrong:
        verify(token, link_keys(), utcnow(), Purpose.ACCEPTANCE)
    assert wrong.value.problem is LinkProblem.WRONG_PURPOSE
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        assert (deal.stage, deal.waiting_on, deal.waiting_on_name) == (
            "signing",
            "sam.rivera@example.com",
            "Sam Rivera",
        )
        assert [t.key for t in timeline(session, deal_id)].count(keys.SIGNING_REQUESTED) == 1


def test_a_chinese_team_rep_is_asked_in_chinese(inbox: Inbox) -> None:
    deal_id = stored("xinghe.json")
    request_signing.fn(deal_id, "run-1")
    [asked] = inbox.matching(lambda m: deal_id in str(m["Subject"]))
    assert str(asked["Subject"]).startswith("请登记已签署的合同")
    assert "客户签署合同后，请在此登记" in text_of(asked)


def test_nothing_is_recorded_without_who_signed_or_the_document() -> None:
    with pytest.raises(SigningError, match="who signed"):
        check_signature("  ", "contract.pdf")
    with pytest.raises(SigningError, match="document reference"):
        check_signature("Jonas Weber", "")


def test_a_deal_handed_over_before_signing_was_a_step_is_not_asked_to_sign() -> None:
    fresh = stored()
    assert not plan_handoff.fn(fresh).signed
    note(fresh, keys.SIGNING_REQUESTED, "signing")
    assert not plan_handoff.fn(fresh).signed, "asked, not signed yet"
    note(fresh, keys.SIGNED, "signed")
    plan = plan_handoff.fn(fresh)
    assert plan.signed and not plan.handed_over

    # Under the previous release: kicked off (its run died before the acceptance
    # request), or waiting for the acceptance, or for the payment.
    kicked_off = stored()
    note(kicked_off, keys.KICKOFF, "delivery_kickoff")
    assert plan_handoff.fn(kicked_off).signed
    waiting = stored()
    note(waiting, keys.KICKOFF, "delivery_kickoff")
    note(waiting, keys.ACCEPTANCE_REQUESTED, "delivery")
    assert plan_handoff.fn(waiting).signed and plan_handoff.fn(waiting).handed_over
    paying = stored()
    note(paying, keys.ACCEPTED, "accepted")
    note(paying, keys.AWAITING_PAYMENT, "awaiting_payment")
    plan = plan_handoff.fn(paying)
    assert plan.signed and plan.handed_over and plan.invoiced_at_acceptance
    # Nor asked to archive: nothing was recorded as signed.
    request_archiving.fn(waiting)
    with session_scope() as session:
        assert keys.ARCHIVE_REQUESTED not in [t.key for t in timeline(session, waiting)]


def signed_and_sent_to_archive(at: dt.datetime, monkeypatch: pytest.MonkeyPatch) -> str:
    deal_id = stored()
    note(deal_id, keys.SIGNED, "signed", at)
    monkeypatch.setattr("tasks.signing.utcnow", lambda: at)
    request_archiving.fn(deal_id)
    request_archiving.fn(deal_id)  # again: once
    return deal_id


def sweep(at: dt.datetime) -> list[str]:
    return [str(done) for done in follow_up_archiving.fn(at)]


def test_administration_is_told_then_reminded_on_the_due_day_then_escalated(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Signed on Thursday 2 April 2026 in Berlin: Good Friday and Easter Monday are
    # holidays, so 3 business days on is Thursday 9 April.
    deal_id = signed_and_sent_to_archive(dt.datetime(2026, 4, 2, 15, 0, tzinfo=BERLIN), monkeypatch)
    told = inbox.matching(to("ines.moreau@example.com", "Archive the signed contract", deal_id))
    assert len(told) == 1 and "sam.rivera@example.com" in str(told[0]["Cc"])
    assert "Please archive it by 2026-04-09 and record it:" in text_of(told[0])
    assert deal_id in open_archives()

    assert sweep(dt.datetime(2026, 4, 8, 23, 0, tzinfo=BERLIN)) == []
    reminded = f"{deal_id}/archive/reminder to ines.moreau@example.com"
    assert sweep(dt.datetime(2026, 4, 9, 8, 0, tzinfo=BERLIN)) == [reminded]
    assert sweep(dt.datetime(2026, 4, 9, 16, 0, tzinfo=BERLIN)) == [], "once"
    escalated = f"{deal_id}/archive/escalation to lena.fischer@example.com"
    assert sweep(dt.datetime(2026, 4, 10, 9, 0, tzinfo=BERLIN)) == [escalated]
    assert sweep(dt.datetime(2026, 4, 20, 9, 0, tzinfo=BERLIN)) == [], "once"

    [reminder] = inbox.matching(
        to("ines.moreau@example.com", "Archive the signed contract today", deal_id)
    )
    assert "is to be archived\r\nby 2026-04-09. When it is, record it:" in text_of(reminder)
    [escalation] = inbox.matching(to("lena.fischer@example.com", "Archiving overdue", deal_id))
    assert "ines.moreau@example.com" in str(escalation["Cc"])
    assert "Please follow up with Ines Moreau." in text_of(escalation)
    with session_scope() as session:
        entries = [t.key for t in timeline(session, deal_id)]
    assert [k for k in entries if k.startswith("archive/")] == [
        "archive/requested",
        "archive/reminder",
        "archive/escalation",
    ]

    done = archive_contract(deal_id, "ARCH-2026-0042", "ines.moreau@example.com")
    assert done.new and done.comment == "ARCH-2026-0042"
    assert deal_id not in open_archives()
    again = archive_contract(deal_id, "ARCH-other", "someone@example.com")
    assert not again.new and again.by == "ines.moreau@example.com"
    assert again.comment == "ARCH-2026-0042"


def test_a_contract_archived_in_time_gets_no_follow_up(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    deal_id = signed_and_sent_to_archive(dt.datetime(2026, 4, 2, 15, 0, tzinfo=BERLIN), monkeypatch)
    archive_contract(deal_id, "ARCH-1", "ines.moreau@example.com")
    assert sweep(dt.datetime(2026, 4, 20, 9, 0, tzinfo=BERLIN)) == []
    assert not inbox.matching(
        lambda m: deal_id in str(m["Subject"]) and "Archiving" in str(m["Subject"])
    )


def test_archiving_is_not_recorded_before_the_contract_is_signed() -> None:
    deal_id = stored()
    with pytest.raises(ArchiveError, match="not recorded yet"):
        archive_contract(deal_id, "ARCH-1", "ines.moreau@example.com")
    with pytest.raises(ArchiveError, match="reference"):
        archive_contract(deal_id, " ", "ines.moreau@example.com")
    with session_scope() as session:
        assert keys.ARCHIVED not in [t.key for t in timeline(session, deal_id)]
