"""The exact keys Dealflow writes under. Runs already waiting in Prefect wait under these
wait keys, and rows already written carry these timeline and outbox keys (an outbox key
also makes the Message-ID a resent mail must keep): a change here strands real deals, so
each string is pinned as it has been since the first release that wrote it."""

from __future__ import annotations

import itertools

from models import keys


def test_wait_keys_are_the_ones_waiting_runs_use() -> None:
    assert keys.gate_wait("manager") == "gate-manager"
    assert keys.gate_wait("sales_director") == "gate-sales-director"
    assert keys.stage_wait("needs_discovery") == "stage-needs-discovery"
    assert keys.SIGNING_WAIT == "signing"
    assert keys.ACCEPTANCE_WAIT == "acceptance"
    assert keys.PAYMENT_WAIT == "payment"
    assert list(itertools.islice(keys.attempt_keys("gate-legal"), 3)) == [
        "gate-legal",
        "gate-legal-attempt-2",
        "gate-legal-attempt-3",
    ]
    assert keys.flow_run_idempotency("D-1") == "deal-handoff/D-1"


def test_wait_keys_read_back() -> None:
    assert keys.base_key("gate-legal-attempt-12") == "gate-legal"
    assert keys.base_key("gate-x-attempt-1") == "gate-x-attempt-1", "attempts start at 2"
    assert keys.waits_for("payment-attempt-2", "payment")
    assert not keys.waits_for("gate-director", "gate-manager")
    assert not keys.waits_for(None, "gate-manager")
    assert keys.is_stage_wait("stage-quote-attempt-2")
    assert not keys.is_stage_wait("gate-manager")
    assert not keys.is_stage_wait(None)


def test_timeline_keys() -> None:
    assert [
        keys.SUBMITTED,
        keys.ROUTED,
        keys.KICKOFF,
        keys.INVOICED,
        keys.ACCEPTANCE_REQUESTED,
        keys.ACCEPTED,
        keys.AWAITING_PAYMENT,
        keys.CLOSED,
        keys.PLAN_CONFIRMED,
    ] == [
        "submitted",
        "route",
        "kickoff",
        "invoiced",
        "acceptance-requested",
        "accepted",
        "awaiting-payment",
        "closed",
        "delivery/plan-confirmed",
    ]
    assert keys.gate_requested("legal") == "gate/legal/requested"
    assert keys.acceptance_link_renewed("2026-12-04T10:00:00+00:00") == (
        "acceptance/link-renewed/2026-12-04T10:00:00+00:00"
    )
    assert keys.gate_decided("legal") == "gate/legal/decided"
    assert keys.gate_delegated("legal", 7) == "gate/legal/delegated/7"
    assert keys.gate_delegation_refused("legal", 7) == "gate/legal/delegation-refused/7"
    assert keys.gate_deadline("legal", "reminder", "Li.Na@Example.com") == (
        "gate/legal/reminder/li.na@example.com"
    )
    assert keys.gate_deadline("legal", "escalation", None) == "gate/legal/escalation"
    assert keys.stage_opened("quote") == "stage/quote/opened"
    assert keys.stage_reported("quote") == "stage/quote/reported"
    assert keys.stage_deadline("quote", "reminder") == "stage/quote/reminder"
    assert keys.invoiced_milestones(["signing", "acceptance"]) == "invoiced-acceptance-signing"
    assert keys.answer_refused("gate-legal-attempt-2") == "answer/gate-legal-attempt-2/refused"
    assert keys.payment_recorded(12) == "payment/12"
    assert keys.dunning_level("INV-1", "first-reminder") == "dunning/INV-1/first-reminder"
    assert keys.mail_held("deal/D-1/kickoff") == "mail/deal/D-1/kickoff/held"
    assert keys.mail_sent_late("deal/D-1/kickoff") == "mail/deal/D-1/kickoff/sent-late"
    assert keys.run_recovered("5f0c") == "run/recovered/5f0c"
    assert keys.run_given_up("9a1b") == "run/given-up/9a1b"
    assert keys.finance_lever("dispute", "INV-1", "2026-12-04T10:00:00+00:00") == (
        "dispute/INV-1/2026-12-04T10:00:00+00:00"
    )


def test_signing_and_archiving_keys() -> None:
    assert [keys.SIGNING_REQUESTED, keys.SIGNED, keys.ARCHIVE_REQUESTED, keys.ARCHIVED] == [
        "signing-requested",
        "signed",
        "archive/requested",
        "archived",
    ]
    assert keys.archive_deadline("reminder") == "archive/reminder"
    assert keys.archive_deadline("escalation") == "archive/escalation"
    assert keys.signing_request_mail("D-1") == "deal/D-1/signing/request"
    assert keys.archive_request_mail("D-1") == "deal/D-1/archive/requested"
    assert keys.deal_mail("D-1", keys.archive_deadline("reminder")) == "deal/D-1/archive/reminder"


def test_customer_success_keys() -> None:
    assert [
        keys.SURVEY_STEP,
        keys.SUCCESS_HANDED_OVER,
        keys.SURVEY_ANSWERED,
        keys.COMPLAINT_OPENED,
        keys.COMPLAINT_ANSWERED,
        keys.COMPLAINT_ESCALATED,
    ] == [
        "survey",
        "success/handed-over",
        "survey/answered",
        "complaint/opened",
        "complaint/answered",
        "complaint/escalation",
    ]
    assert keys.survey_mail("D-1") == "deal/D-1/survey/request"
    assert keys.deal_mail("D-1", keys.SUCCESS_HANDED_OVER) == "deal/D-1/success/handed-over"
    assert keys.deal_mail("D-1", keys.COMPLAINT_OPENED) == "deal/D-1/complaint/opened"
    assert keys.deal_mail("D-1", keys.COMPLAINT_ESCALATED) == "deal/D-1/complaint/escalation"


def test_timeline_keys_read_back() -> None:
    assert keys.stage_event("stage/quote/opened") == ("quote", "opened")
    assert keys.stage_event("stage/quote/escalation") == ("quote", "escalation")
    assert keys.stage_event("gate/quote/requested") is None
    assert keys.stage_event("stage/quote") is None


def test_outbox_keys() -> None:
    assert keys.deal_mail("D-1", keys.KICKOFF) == "deal/D-1/kickoff"
    assert (
        keys.deal_mail("D-1", "gate/legal/reminder/a@b.c") == "deal/D-1/gate/legal/reminder/a@b.c"
    )
    assert keys.gate_request_mail("D-1", "legal") == "deal/D-1/gate/legal/request"
    assert keys.delegation_mail("D-1", "legal", "a@b.c") == "deal/D-1/gate/legal/delegated/a@b.c"
    assert keys.rejected_mail("D-1") == "deal/D-1/rejected"
    assert keys.acceptance_request_mail("D-1") == "deal/D-1/acceptance/request"
    renewed = keys.acceptance_link_renewed("2026-12-04T10:00:00+00:00")
    assert keys.deal_mail("D-1", renewed) == (
        "deal/D-1/acceptance/link-renewed/2026-12-04T10:00:00+00:00"
    )
    assert keys.invoice_mail("D-1", "INV-2026-0001") == "deal/D-1/invoice/INV-2026-0001"
    assert keys.dunning_letter_mail("INV-1", "final") == "invoice/INV-1/dunning/final"
    assert (
        keys.dunning_digest_mail(3, "Finance@Example.com") == "dunning/digest/3/finance@example.com"
    )
    assert keys.weekly_report_mail("2026-W48") == "report/weekly/2026-W48"
    assert keys.payment_check_mail("run-1") == "payment-check/run-1/report"
    request = keys.gate_request_mail("D-1", "legal")
    assert keys.channel_notice(request) == "deal/D-1/gate/legal/request:channel"
    assert keys.channel_notice(request, 1) == "deal/D-1/gate/legal/request:channel-2"


def test_outbox_keys_read_back() -> None:
    assert keys.invoice_number_of_mail("deal/D-1/invoice/INV-7") == "INV-7"
    assert keys.invoice_number_of_mail("invoice/INV-7/dunning/final") == "INV-7"
    assert keys.invoice_number_of_mail("invoice/INV-7/dunning/final:channel-2") == "INV-7"


def test_a_revision_has_keys_of_its_own_and_revision_1_keeps_the_old_ones() -> None:
    """Revision 2 of a rejected deal asks its gates again: none of its keys may be taken
    for revision 1's (its approval request would be deduplicated, never sent)."""

    def every_key(revision: int) -> list[str]:
        return [
            keys.routed(revision),
            keys.gate_requested("manager", revision),
            keys.gate_decided("manager", revision),
            keys.gate_delegated("legal", 7, revision),
            keys.gate_delegation_refused("legal", 7, revision),
            keys.gate_deadline("director", "reminder", "Dana@Example.com", revision),
            keys.gate_deadline("director", "escalation", None, revision),
            keys.answer_refused("gate-manager", revision),
            keys.gate_request_mail("D-1", "manager", revision),
            keys.delegation_mail("D-1", "legal", "lee@example.com", revision),
            keys.rejected_mail("D-1", revision),
            keys.flow_run_idempotency("D-1", revision),
            keys.deal_run_name("D-1", revision),
        ]

    assert every_key(1) == [
        "route",
        "gate/manager/requested",
        "gate/manager/decided",
        "gate/legal/delegated/7",
        "gate/legal/delegation-refused/7",
        "gate/director/reminder/dana@example.com",
        "gate/director/escalation",
        "answer/gate-manager/refused",
        "deal/D-1/gate/manager/request",
        "deal/D-1/gate/legal/delegated/lee@example.com",
        "deal/D-1/rejected",
        "deal-handoff/D-1",
        "deal-D-1",
    ]
    assert every_key(2) == [
        "r2/route",
        "r2/gate/manager/requested",
        "r2/gate/manager/decided",
        "r2/gate/legal/delegated/7",
        "r2/gate/legal/delegation-refused/7",
        "r2/gate/director/reminder/dana@example.com",
        "r2/gate/director/escalation",
        "r2/answer/gate-manager/refused",
        "deal/D-1/r2/gate/manager/request",
        "deal/D-1/r2/gate/legal/delegated/lee@example.com",
        "deal/D-1/r2/rejected",
        "deal-handoff/D-1/r2",
        "deal-D-1-r2",
    ]
    assert not set(every_key(1)) & set(every_key(2)) & set(every_key(3))
    assert len(set(every_key(1) + every_key(2) + every_key(3))) == 3 * len(every_key(1))
    assert keys.revision_submitted(2) == "revision/2/submitted"


def test_repurchase_keys() -> None:
    assert [keys.REPURCHASE_REQUESTED, keys.REPURCHASE_REMINDER, keys.REPURCHASE_RECORDED] == [
        "repurchase/requested",
        "repurchase/reminder",
        "repurchase/recorded",
    ]
    assert keys.deal_mail("D-1", keys.REPURCHASE_REQUESTED) == "deal/D-1/repurchase/requested"
    assert keys.deal_mail("D-1", keys.REPURCHASE_REMINDER) == "deal/D-1/repurchase/reminder"


def test_delivery_progress_keys() -> None:
    assert keys.progress_report(1) == "progress/week-1"
    assert keys.progress_deadline(3, "reminder") == "progress/week-3/reminder"
    assert keys.progress_deadline(3, "escalation") == "progress/week-3/escalation"
    assert keys.change_request(2) == "change-request/2"
    assert keys.change_request(2).startswith(keys.CHANGE_REQUEST_PREFIX)
    assert keys.deal_mail("D-1", keys.progress_report(2)) == "deal/D-1/progress/week-2"
