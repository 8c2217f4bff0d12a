"""Applying an approver's decision: check everything, record it once, resume the deal's run.

Prefect is imported with the web service, not on the first decision, so that the first
approver after a restart does not wait for it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.orm import Session

from dealflow.answers import waiting_run
from dealflow.answers.waiting_run import Answered, Earlier, Patience, Why, answer_waiting_run
from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.deal_links import deal_page_url
from dealflow.infra.links import LinkClaim
from dealflow.infra.records import approvals, get_approval, get_deal, intake_of
from models.decision import GateDecision
from models.keys import gate_wait
from models.matrix import MatrixError, load_matrix
from models.settings import Settings
from models.tables import Approval, Deal
from tasks.handoff import INVOICED_AT_HANDOFF


class Verdict(StrEnum):
    DECIDED = "decided"
    ALREADY_DECIDED = "already-decided"
    REFUSED = "refused"
    NOT_WAITING = "not-waiting"
    TRY_AGAIN = "try-again"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    message: str
    deal_page: str = ""  # a link to the deal's page, once the decision is recorded


_UNREACHABLE = Outcome(
    Verdict.TRY_AGAIN,
    "Dealflow cannot reach its workflow server or database right now. Nothing was "
    "recorded; try again in a minute.",
)


_RUN_GONE = Outcome(
    Verdict.NOT_WAITING,
    "This deal's workflow run no longer exists. Nothing was recorded; ask operations.",
)


class _ReassignedMeanwhile(Exception):
    pass


def recorded(row: Approval) -> Earlier | None:
    """The gate's decision as recorded, if it was."""
    if row.decision is None:
        return None
    return Earlier(row.decided_by_name or row.decided_by or "?", row.decided_at, row.decision)


def already(earlier: Earlier) -> Outcome:
    """The answer to whoever decides a gate decided before: who decided it, and when."""
    at = f"{earlier.at:%Y-%m-%d %H:%M} UTC" if earlier.at else "?"
    return Outcome(Verdict.ALREADY_DECIDED, f"Already {earlier.what} by {earlier.by} at {at}.")


def check_claim(claim: LinkClaim) -> Outcome | None:
    """Why this approver may not decide this gate now, or None if they may."""
    with session_scope() as session:
        deal = get_deal(session, claim.deal_id)
        row = get_approval(session, claim.deal_id, claim.gate)
        if row is None or deal.flow_run_id != claim.run_id:
            return Outcome(Verdict.REFUSED, "This link does not belong to a gate of this deal.")
        earlier = recorded(row)
        if earlier is not None:
            return already(earlier)
        if deal.outcome == "rejected":
            return Outcome(
                Verdict.NOT_WAITING, f"The deal was already rejected: {deal.outcome_reason}"
            )
        approver = claim.approver.lower()
        if not row.may_decide(approver):
            return Outcome(
                Verdict.REFUSED, f"This gate is assigned to {row.current_assignee[1]}, not to you."
            )
        if approver == deal.sales_rep_email.lower():
            return Outcome(
                Verdict.REFUSED, "The sales rep who submitted the deal cannot approve it."
            )
        other = next(
            (
                a
                for a in approvals(session, deal.id)
                if a.gate != row.gate and (a.decided_by or "").lower() == approver
            ),
            None,
        )
        if other is not None:
            return Outcome(
                Verdict.REFUSED,
                f"You already decided the {other.gate} gate of this deal; one person approves one gate.",
            )
    return None


def decide(
    claim: LinkClaim,
    approved: bool,
    comment: str,
    settings: Settings,
    patience: Patience | None = None,
) -> Outcome:
    refusal = check_claim(claim)
    if refusal is not None:
        return refusal
    verb = "approved" if approved else "rejected"

    def earlier(session: Session, _deal: Deal) -> Earlier | None:
        row = get_approval(session, claim.deal_id, claim.gate)
        return recorded(row) if row is not None else None

    def record(session: Session, _deal: Deal) -> GateDecision:
        row = get_approval(session, claim.deal_id, claim.gate)
        assert row is not None, "check_claim found the gate"
        # The deal's row lock orders this decision with the sla-sweep, which may just
        # have handed the gate to a delegate or escalated it.
        if not row.may_decide(claim.approver):
            raise _ReassignedMeanwhile(row.current_assignee[1])
        decision = GateDecision(
            approved=approved,
            decided_by=claim.approver,
            decided_by_name=row.name_of(claim.approver),
            comment=comment,
            decided_at=utcnow(),
        )
        row.decision, row.decided_by = verb, decision.decided_by
        row.decided_by_name, row.comment = decision.decided_by_name, comment
        row.decided_at = decision.decided_at
        return decision

    try:
        answered = answer_waiting_run(
            claim.deal_id,
            gate_wait(claim.gate),
            record=record,
            earlier=earlier,
            run_id=claim.run_id,
            patience=patience or Patience(settings.resume_wait_seconds),
        )
    except _ReassignedMeanwhile as moved:
        return Outcome(
            Verdict.REFUSED, f"This gate was just handed to {moved}. Nothing was recorded."
        )
    outcome = in_words(answered, verb)
    if outcome.verdict is not Verdict.DECIDED:
        return outcome
    try:
        next_step = what_happens_next(claim.deal_id, claim.gate, approved, settings)
    except MatrixError:
        # The decision is recorded: the page must not say otherwise for want of a title.
        next_step = ""
    return Outcome(
        outcome.verdict, f"{outcome.message} {next_step}".strip(), deal_page_url(claim.deal_id)
    )


def what_happens_next(deal_id: str, gate: str, approved: bool, settings: Settings) -> str:
    """After a decision: who decides next, or what the last approval set going."""
    matrix = load_matrix(settings.matrix_path)
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        intake, team = intake_of(deal), deal.team
        rows = approvals(session, deal_id)
        position = next(row.position for row in rows if row.gate == gate)
        ahead = next(
            (row for row in rows if row.position > position and row.decision is None), None
        )
        ahead_gate, ahead_name = (ahead.gate, ahead.current_assignee[1]) if ahead else ("", "")
    if not approved:
        return (
            f"The deal stops here: Dealflow tells {intake.sales_rep.name}, the sales rep, "
            "with your comment."
        )
    if ahead_gate:
        return (
            f"Next, {ahead_name} decides the {matrix.gate_title(ahead_gate).lower()}; "
            "Dealflow asks them by email now."
        )
    manager = matrix.first_for(matrix.handoff.delivery_role, team)
    due = [p.label for p in intake.payment_terms.schedule if p.milestone in INVOICED_AT_HANDOFF]
    invoices = (
        f"the invoices due now go to the customer: {', '.join(due)}"
        if due
        else "no invoice is due before delivery"
    )
    return f"That was the last approval: delivery goes to {manager.name}, and {invoices}."


def in_words(answered: waiting_run.Outcome, verb: str) -> Outcome:
    """What the approver's page says of each outcome of answering the run."""
    if answered.kind is Answered.RESUMED:
        return Outcome(Verdict.DECIDED, f"You {verb} this deal. Thank you.")
    if answered.earlier is not None:
        return already(answered.earlier)
    match answered.why:
        case Why.ON_ITS_WAY:
            return Outcome(
                Verdict.TRY_AGAIN,
                "The deal is still on its way to this gate. Try again in a minute.",
            )
        case Why.CRASHED:
            # The sla-sweep schedules crashed runs again (tasks/recovery.py), up to its
            # limit; past it operations retry the run once they know why it crashed.
            return Outcome(
                Verdict.TRY_AGAIN,
                "This deal's workflow stopped unexpectedly and is being restarted. Nothing "
                "was recorded; try again later (operations can tell you when).",
            )
        case Why.RESTARTING:
            # Its process died half-way through suspending: the sweep starts it again.
            return Outcome(
                Verdict.TRY_AGAIN,
                "This deal's workflow is being restarted. Nothing was recorded; try again "
                "in a few minutes.",
            )
        case Why.UNREACHABLE:
            return _UNREACHABLE
        case Why.REFUSED:
            return Outcome(
                Verdict.NOT_WAITING,
                "The workflow server did not accept this decision. Nothing was recorded; "
                "operations can tell you why.",
            )
        case Why.RUN_GONE:
            return _RUN_GONE
        case Why.NO_RUN | Why.OTHER_RUN:
            return Outcome(Verdict.REFUSED, "This link does not belong to a gate of this deal.")
    return Outcome(
        Verdict.NOT_WAITING,
        f"This deal is not waiting for this decision (its run is {answered.state or 'gone'}).",
    )
