"""Every key Dealflow writes under, built and read back in this one module.

Three namespaces, each with its own uniqueness:

- **wait keys**: what a suspended deal run waits under in Prefect (``gate-legal``). Prefect's
  input keys take lowercase letters, digits and dashes only. A refused answer moves the
  wait to the step's next attempt (``gate-legal-attempt-2``, ...).
- **timeline keys**: a deal's ``StageTransition`` rows, unique per deal (``gate/legal/
  requested``). An effect that must happen once is recorded under one.
- **outbox keys**: a ``SentMessage`` row, unique in the whole database, so a mail about
  a deal starts with ``deal/<id>/`` and a letter about an invoice with ``invoice/<no>/``.
  The key also makes the message's Message-ID.

Runs already waiting and rows already written depend on these exact strings, so none of
them may change: tests/models/test_keys.py pins each one.

A rejected deal may be revised and submitted again (``dealflow deal resubmit``): each
revision has a run of its own, and every key of what a revision does again (its route,
its gates' requests, decisions, reminders and mails, its rejection) names the revision
from the second on (``r2/gate/legal/requested``, ``deal/<id>/r2/gate/legal/request``),
so that revision 2's approval request is sent and not taken for revision 1's. Revision
1's keys are the keys of a deal never revised, unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# --- wait keys ---------------------------------------------------------------------

SIGNING_WAIT = "signing"
ACCEPTANCE_WAIT = "acceptance"
PAYMENT_WAIT = "payment"
# The step a satisfaction survey link names (in its claim's gate): no run waits for it.
SURVEY_STEP = "survey"
# The steps the sales rep's duty links name: the weekly progress report and the
# repurchase conversation (no run waits for them either).
PROGRESS_STEP = "progress"
REPURCHASE_STEP = "repurchase"
_ATTEMPT = re.compile(r"^(?P<base>.+)-attempt-(?P<n>[2-9]|[1-9]\d+)$")


def _wait_name(name: str) -> str:
    return name.replace("_", "-")


def gate_wait(gate: str) -> str:
    """``gate-<name>``, where the run waits for a gate's decision."""
    return f"gate-{_wait_name(gate)}"


def stage_wait(stage: str) -> str:
    """``stage-<name>``, where the run waits for a sales rep to report a stage done."""
    return f"stage-{_wait_name(stage)}"


def is_stage_wait(key: str | None) -> bool:
    return key is not None and base_key(key).startswith("stage-")


def attempt_keys(base: str) -> Iterator[str]:
    """The keys a run waits under for one answer: ``base`` first, then one more per
    refused answer (``<base>-attempt-2``, ...)."""
    yield base
    attempt = 2
    while True:
        yield f"{base}-attempt-{attempt}"
        attempt += 1


def base_key(key: str) -> str:
    """The step a wait key belongs to (``gate-legal-attempt-3`` -> ``gate-legal``)."""
    match = _ATTEMPT.match(key)
    return match["base"] if match else key


def waits_for(key: str | None, base: str) -> bool:
    """Whether a run paused under ``key`` waits for the answer to step ``base``."""
    return key is not None and base_key(key) == base


def flow_run_idempotency(deal_id: str, revision: int = 1) -> str:
    """The idempotency key of a deal's one flow run per revision: a second submission of
    the same revision finds it."""
    return f"deal-handoff/{deal_id}" + _revision_suffix(revision)


def deal_run_name(deal_id: str, revision: int = 1) -> str:
    """A deal's run in the Prefect UI: ``deal-<id>``, and ``deal-<id>-r2`` for its second
    revision (a rejected deal submitted again)."""
    return f"deal-{deal_id}" + ("" if revision <= 1 else f"-r{revision}")


def _revision_suffix(revision: int) -> str:
    return "" if revision <= 1 else f"/r{revision}"


def in_revision(key: str, revision: int = 1) -> str:
    """``key`` for what ``revision`` of a deal does: the key itself for revision 1,
    ``r<n>/<key>`` for a later one."""
    return key if revision <= 1 else f"r{revision}/{key}"


# --- timeline keys (unique per deal) -------------------------------------------------

SUBMITTED = "submitted"
ROUTED = "route"
SIGNING_REQUESTED = "signing-requested"
SIGNED = "signed"
ARCHIVE_REQUESTED = "archive/requested"
ARCHIVED = "archived"
KICKOFF = "kickoff"
INVOICED = "invoiced"
ACCEPTANCE_REQUESTED = "acceptance-requested"
ACCEPTED = "accepted"
AWAITING_PAYMENT = "awaiting-payment"
CLOSED = "closed"
PLAN_CONFIRMED = "delivery/plan-confirmed"
REPURCHASE_REQUESTED = "repurchase/requested"
REPURCHASE_REMINDER = "repurchase/reminder"
REPURCHASE_RECORDED = "repurchase/recorded"
# Customer success (after the acceptance): the hand-over, the customer's satisfaction
# survey answered (once), and a complaint a low score opens, its answer and escalation.
SUCCESS_HANDED_OVER = "success/handed-over"
SURVEY_ANSWERED = "survey/answered"
COMPLAINT_OPENED = "complaint/opened"
COMPLAINT_ANSWERED = "complaint/answered"
COMPLAINT_ESCALATED = "complaint/escalation"


def archive_deadline(level: str) -> str:
    """The archiving duty's follow-up at ``level`` ("reminder", "escalation"): once each."""
    return f"archive/{level}"


def acceptance_link_renewed(at_iso: str) -> str:
    """A fresh acceptance link mailed on request: each renewal its own."""
    return f"acceptance/link-renewed/{at_iso}"


def routed(revision: int = 1) -> str:
    """The approval route, planned once per revision."""
    return in_revision(ROUTED, revision)


def revision_submitted(revision: int) -> str:
    """A rejected deal submitted again as ``revision`` (2, 3, ...)."""
    return f"revision/{revision}/submitted"


def gate_requested(gate: str, revision: int = 1) -> str:
    return in_revision(f"gate/{gate}/requested", revision)


def gate_decided(gate: str, revision: int = 1) -> str:
    return in_revision(f"gate/{gate}/decided", revision)


def gate_delegated(gate: str, delegate_id: object, revision: int = 1) -> str:
    return in_revision(f"gate/{gate}/delegated/{delegate_id}", revision)


def gate_delegation_refused(gate: str, delegate_id: object, revision: int = 1) -> str:
    return in_revision(f"gate/{gate}/delegation-refused/{delegate_id}", revision)


def gate_deadline(gate: str, level: str, holder_email: str | None, revision: int = 1) -> str:
    """A reminder is per person holding the gate; an escalation (``holder_email`` None)
    happens once per gate (of each revision)."""
    holder = "" if holder_email is None else f"/{holder_email.lower()}"
    return in_revision(f"gate/{gate}/{level}{holder}", revision)


def stage_opened(stage: str) -> str:
    return f"stage/{stage}/opened"


def stage_reported(stage: str) -> str:
    return f"stage/{stage}/reported"


def stage_deadline(stage: str, level: str) -> str:
    return f"stage/{stage}/{level}"


def stage_event(key: str) -> tuple[str, str] | None:
    """``(stage, "opened" | "reported" | <level>)`` of a stage's timeline key, else None."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == "stage":
        return parts[1], parts[2]
    return None


def invoiced_milestones(milestones: Iterable[str]) -> str:
    return "invoiced-" + "-".join(sorted(milestones))


def answer_refused(wait_key: str, revision: int = 1) -> str:
    return in_revision(f"answer/{wait_key}/refused", revision)


def payment_recorded(payment_id: int) -> str:
    return f"payment/{payment_id}"


def dunning_level(invoice_number: str, level: str) -> str:
    return f"dunning/{invoice_number}/{level}"


def mail_held(outbox_key: str) -> str:
    return f"mail/{outbox_key}/held"


def mail_sent_late(outbox_key: str) -> str:
    return f"mail/{outbox_key}/sent-late"


def run_recovered(state_id: object) -> str:
    """The sweep started a lost run again (once per lost state of the run)."""
    return f"run/recovered/{state_id}"


def run_given_up(run_id: object) -> str:
    return f"run/given-up/{run_id}"


def finance_lever(lever: str, invoice_number: str, at_iso: str) -> str:
    """Finance pulled a lever on an invoice (dispute, write-off, reopen): each pull its own."""
    return f"{lever}/{invoice_number}/{at_iso}"


# Delivery progress (a duty beside the run, from kickoff to acceptance): the rep's report
# of each week, the sla-sweep's follow-ups on a missed one, and change requests.


PROGRESS_PREFIX = "progress/week-"


def progress_report(week: int) -> str:
    """The rep's progress report for delivery week ``week`` (1, 2, ...): once each; its
    mail to the customer's contact is ``deal_mail`` of the same key."""
    return f"{PROGRESS_PREFIX}{week}"


def progress_deadline(week: int, level: str) -> str:
    """The sla-sweep's follow-up on week ``week``'s missing report at ``level``
    ("reminder", "escalation"): once each."""
    return f"{progress_report(week)}/{level}"


def change_request(number: int) -> str:
    """A change request during delivery and its decision: the deal's ``number``-th."""
    return f"change-request/{number}"


CHANGE_REQUEST_PREFIX = "change-request/"


# --- outbox keys (unique in the database) --------------------------------------------


def deal_mail(deal_id: str, about: str) -> str:
    """``deal/<id>/<about>``: a mail about one deal, ``about`` usually its timeline key."""
    return f"deal/{deal_id}/{about}"


def gate_request_mail(deal_id: str, gate: str, revision: int = 1) -> str:
    return deal_mail(deal_id, in_revision(f"gate/{gate}/request", revision))


def delegation_mail(deal_id: str, gate: str, delegate_email: str, revision: int = 1) -> str:
    return deal_mail(deal_id, in_revision(f"gate/{gate}/delegated/{delegate_email}", revision))


def rejected_mail(deal_id: str, revision: int = 1) -> str:
    return deal_mail(deal_id, in_revision("rejected", revision))


def signing_request_mail(deal_id: str) -> str:
    return deal_mail(deal_id, "signing/request")


def archive_request_mail(deal_id: str) -> str:
    return deal_mail(deal_id, ARCHIVE_REQUESTED)


def acceptance_request_mail(deal_id: str) -> str:
    return deal_mail(deal_id, "acceptance/request")


def survey_mail(deal_id: str) -> str:
    """The satisfaction survey to the customer's contact, sent with the hand-over."""
    return deal_mail(deal_id, "survey/request")


def invoice_mail(deal_id: str, invoice_number: str) -> str:
    return deal_mail(deal_id, f"invoice/{invoice_number}")


def invoice_number_of_mail(outbox_key: str) -> str:
    """The invoice number an invoice mail or a dunning letter (or its channel notice) is
    about."""
    parts = (
        outbox_key.rpartition(":channel")[0].split("/")
        if ":channel" in outbox_key
        else outbox_key.split("/")
    )
    if parts[0] == "invoice":
        return parts[1]  # invoice/<number>/dunning/<level>
    return parts[-1]  # deal/<id>/invoice/<number>


def dunning_letter_mail(invoice_number: str, level: str) -> str:
    return f"invoice/{invoice_number}/dunning/{level}"


def dunning_digest_mail(batch: object, email: str) -> str:
    return f"dunning/digest/{batch}/{email.lower()}"


def weekly_report_mail(period_key: str, language: str = "en") -> str:
    """The weekly report to its English readers; to the readers of another language, the
    same key with the language after it."""
    key = f"report/weekly/{period_key}"
    return key if language == "en" else f"{key}/{language}"


def payment_check_mail(run_key: str, language: str = "en") -> str:
    """The payment check's report to finance's English readers; to the readers of another
    language, the same key with the language after it."""
    key = f"payment-check/{run_key}/report"
    return key if language == "en" else f"{key}/{language}"


def channel_notice(mail_key: str, index: int = 0) -> str:
    """``<email key>:channel``: the notice an email's recipient also gets in a messaging
    app. An email whose recipients have several channels posts to each in the order of
    its recipients: the second is ``<email key>:channel-2``, and so on."""
    return f"{mail_key}:channel" if index == 0 else f"{mail_key}:channel-{index + 1}"
