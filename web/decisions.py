"""Applying an approver's decision: check everything, record it once, resume the deal's run.

Prefect is imported with the web service, not on the first decision, so that the first
approver after a restart does not wait for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.orm import Session

from dealflow.answers import waiting_run
from dealflow.answers.waiting_run import Answered, Earlier, Patience, Why, answer_waiting_run
from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.deal_links import deal_page_url
from dealflow.infra.links import LinkClaim
from dealflow.infra.records import approvals, get_approval, get_deal, intake_of, store_decision
from dealflow.infra.words import Words, sentences
from models.decision import GateDecision
from models.keys import gate_wait
from models.language import ENGLISH
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
    said: tuple[Words, ...]  # in the approver's language on their page
    deal_page: str = ""  # a link to the deal's page, once the decision is recorded

    def message_in(self, language: str) -> str:
        return sentences(self.said, language)

    @property
    def message(self) -> str:
        return self.message_in(ENGLISH)


def _outcome(verdict: Verdict, *said: Words) -> Outcome:
    return Outcome(verdict, said)


_UNREACHABLE = _outcome(
    Verdict.TRY_AGAIN,
    Words(
        "Dealflow cannot reach its workflow server or database right now. Nothing was "
        "recorded; try again in a minute."
    ),
)


_RUN_GONE = _outcome(
    Verdict.NOT_WAITING,
    Words("This deal's workflow run no longer exists. Nothing was recorded; ask operations."),
)

_NOT_THIS_DEAL = _outcome(
    Verdict.REFUSED, Words("This link does not belong to a gate of this deal.")
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
    at = earlier.at or "?"
    if earlier.what == "rejected":
        said = Words("Already rejected by %(by)s at %(at)s.", by=earlier.by, at=at)
    else:
        said = Words("Already approved by %(by)s at %(at)s.", by=earlier.by, at=at)
    return _outcome(Verdict.ALREADY_DECIDED, said)


def check_claim(claim: LinkClaim) -> Outcome | None:
    """Why this approver may not decide this gate now, or None if they may."""
    with session_scope() as session:
        deal = get_deal(session, claim.deal_id)
        row = get_approval(session, claim.deal_id, claim.gate)
        if row is None or deal.flow_run_id != claim.run_id:
            return _NOT_THIS_DEAL
        earlier = recorded(row)
        if earlier is not None:
            return already(earlier)
        if deal.outcome == "rejected":
            return _outcome(
                Verdict.NOT_WAITING,
                Words("The deal was already rejected: %(why)s", why=deal.outcome_reason or ""),
            )
        approver = claim.approver.lower()
        if not row.may_decide(approver):
            return _outcome(
                Verdict.REFUSED,
                Words(
                    "This gate is assigned to %(name)s, not to you.",
                    name=row.current_assignee[1],
                ),
            )
        if approver == deal.sales_rep_email.lower():
            return _outcome(
                Verdict.REFUSED, Words("The sales rep who submitted the deal cannot approve it.")
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
            return _outcome(
                Verdict.REFUSED,
                Words(
                    "You already decided the %(gate)s gate of this deal; one person approves "
                    "one gate.",
                    gate=other.gate,
                ),
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
        store_decision(row, decision)
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
        return _outcome(
            Verdict.REFUSED,
            Words("This gate was just handed to %(name)s. Nothing was recorded.", name=str(moved)),
        )
    outcome = in_words(answered, approved)
    if outcome.verdict is not Verdict.DECIDED:
        return outcome
    try:
        next_step = what_happens_next(claim.deal_id, claim.gate, approved, settings)
    except MatrixError:
        # The decision is recorded: the page must not say otherwise for want of a title.
        next_step = None
    said = outcome.said if next_step is None else (*outcome.said, next_step)
    return Outcome(outcome.verdict, said, deal_page_url(claim.deal_id))


def what_happens_next(deal_id: str, gate: str, approved: bool, settings: Settings) -> Words:
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
        return Words(
            "The deal stops here: Dealflow tells %(rep)s, the sales rep, with your comment.",
            rep=intake.sales_rep.name,
        )
    if ahead_gate:
        return Words(
            "Next, %(name)s decides the %(gate)s; Dealflow asks them by email now.",
            name=ahead_name,
            gate=_GateTitle(matrix.gate_title, ahead_gate),
        )
    manager = matrix.first_for(matrix.handoff.delivery_role, team)
    due = [p.label for p in intake.payment_terms.schedule if p.milestone in INVOICED_AT_HANDOFF]
    if due:
        return Words(
            "That was the last approval: Dealflow asks %(rep)s, the sales rep, to record the "
            "signed contract; then delivery goes to %(name)s, and the invoices due at signing "
            "go to the customer: %(invoices)s.",
            rep=intake.sales_rep.name,
            name=manager.name,
            invoices=", ".join(due),
        )
    return Words(
        "That was the last approval: Dealflow asks %(rep)s, the sales rep, to record the "
        "signed contract; then delivery goes to %(name)s, and no invoice is due before "
        "delivery.",
        rep=intake.sales_rep.name,
        name=manager.name,
    )


class _GateTitle(Words):
    """A gate's title, as the matrix gives it in each language."""

    def __init__(self, title: Callable[[str, str], str], gate: str) -> None:
        super().__init__(gate)
        self._title = title

    def in_language(self, language: str) -> str:
        title = self._title(self.text, language)
        return title.lower() if language == ENGLISH else title  # in the middle of a sentence


def in_words(answered: waiting_run.Outcome, approved: bool) -> Outcome:
    """What the approver's page says of each outcome of answering the run."""
    if answered.kind is Answered.RESUMED:
        if approved:
            return _outcome(Verdict.DECIDED, Words("You approved this deal. Thank you."))
        return _outcome(Verdict.DECIDED, Words("You rejected this deal. Thank you."))
    if answered.earlier is not None:
        return already(answered.earlier)
    match answered.why:
        case Why.ON_ITS_WAY:
            return _outcome(
                Verdict.TRY_AGAIN,
                Words("The deal is still on its way to this gate. Try again in a minute."),
            )
        case Why.CRASHED:
            # The sla-sweep schedules crashed runs again (tasks/recovery.py), up to its
            # limit; past it operations retry the run once they know why it crashed.
            return _outcome(
                Verdict.TRY_AGAIN,
                Words(
                    "This deal's workflow stopped unexpectedly and is being restarted. Nothing "
                    "was recorded; try again later (operations can tell you when)."
                ),
            )
        case Why.RESTARTING:
            # Its process died half-way through suspending: the sweep starts it again.
            return _outcome(Verdict.TRY_AGAIN, _RESTARTING)
        case Why.UNREACHABLE:
            return _UNREACHABLE
        case Why.REFUSED:
            return _outcome(
                Verdict.NOT_WAITING,
                Words(
                    "The workflow server did not accept this decision. Nothing was recorded; "
                    "operations can tell you why."
                ),
            )
        case Why.RUN_GONE:
            return _RUN_GONE
        case Why.NO_RUN | Why.OTHER_RUN:
            return _NOT_THIS_DEAL
    return _outcome(
        Verdict.NOT_WAITING,
        Words(
            "This deal is not waiting for this decision (its run is %(state)s).",
            state=answered.state or "gone",
        ),
    )


_RESTARTING = Words(
    "This deal's workflow is being restarted. Nothing was recorded; try again in a few minutes."
)
