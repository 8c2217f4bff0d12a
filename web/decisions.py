"""Applying an approver's decision: check everything, record it once, resume the deal's run.

Prefect is imported with the web service, not on the first decision, so that the first
approver after a restart does not wait for it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import StrEnum

import httpx
from prefect.exceptions import (
    FlowPauseTimeout,
    NotPausedError,
    ObjectNotFound,
    PrefectHTTPStatusError,
)
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.links import ApprovalClaim
from dealflow.infra.prefect_api import pause_state, resume_with_answer
from dealflow.infra.records import approvals, get_approval, get_deal
from models.decision import GateDecision
from models.keys import gate_wait, waits_for
from models.settings import Settings
from models.tables import Approval

log = logging.getLogger(__name__)


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
    approval: Approval | None = None


_UNREACHABLE = Outcome(
    Verdict.TRY_AGAIN,
    "Dealflow cannot reach its workflow server or database right now. Nothing was "
    "recorded; try again in a minute.",
)


_RUN_GONE = Outcome(
    Verdict.NOT_WAITING,
    "This deal's workflow run no longer exists. Nothing was recorded; ask operations.",
)


class _DecidedMeanwhile(Exception):
    pass


class _ReassignedMeanwhile(Exception):
    pass


def already(row: Approval) -> Outcome:
    who = row.decided_by_name or row.decided_by
    at = row.decided_at.strftime("%Y-%m-%d %H:%M UTC") if row.decided_at else "?"
    return Outcome(Verdict.ALREADY_DECIDED, f"Already {row.decision} by {who} at {at}.", row)


def check_claim(claim: ApprovalClaim) -> Outcome | None:
    """Why this approver may not decide this gate now, or None if they may."""
    with session_scope() as session:
        deal = get_deal(session, claim.deal_id)
        row = get_approval(session, claim.deal_id, claim.gate)
        if row is None or deal.flow_run_id != claim.run_id:
            return Outcome(Verdict.REFUSED, "This link does not belong to a gate of this deal.")
        if row.decision is not None:
            return already(row)
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


def wait_for_gate(run_id: str, gate: str, settings: Settings) -> Outcome | None:
    """None once the run is suspended at ``gate``; an Outcome if it will not be."""
    deadline = time.monotonic() + settings.resume_wait_seconds
    while True:
        state, key = pause_state(run_id)
        if state == "PAUSED" and waits_for(key, gate_wait(gate)):
            return None
        if state == "CRASHED":
            # The sla-sweep schedules crashed runs again (tasks/recovery.py), up to its
            # limit; past it operations retry the run once they know why it crashed.
            return Outcome(
                Verdict.TRY_AGAIN,
                "This deal's workflow stopped unexpectedly and is being restarted. Nothing "
                "was recorded; try again later (operations can tell you when).",
            )
        if state in {"COMPLETED", "FAILED", "CANCELLED"} or (
            state == "PAUSED" and key is not None and not waits_for(key, gate_wait(gate))
        ):
            return Outcome(
                Verdict.NOT_WAITING,
                f"This deal is not waiting for this decision (its run is {state.lower()}).",
            )
        if time.monotonic() >= deadline:
            return Outcome(
                Verdict.TRY_AGAIN,
                "The deal is still on its way to this gate. Try again in a minute.",
            )
        time.sleep(0.2)


def decide(claim: ApprovalClaim, approved: bool, comment: str, settings: Settings) -> Outcome:
    refusal = check_claim(claim)
    if refusal is not None:
        return refusal
    try:
        not_ready = wait_for_gate(claim.run_id, claim.gate, settings)
    except ObjectNotFound:
        return _RUN_GONE
    except (httpx.HTTPError, PrefectHTTPStatusError):
        return _UNREACHABLE
    if not_ready is not None:
        return not_ready
    with session_scope() as session:
        gate = get_approval(session, claim.deal_id, claim.gate)
        approver_name = gate.name_of(claim.approver) if gate else claim.approver
    decision = GateDecision(
        approved=approved,
        decided_by=claim.approver,
        decided_by_name=approver_name,
        comment=comment,
        decided_at=utcnow(),
    )
    try:
        with session_scope() as session:
            # The deal's row lock orders this decision with the sla-sweep, which may
            # just have handed the gate to a delegate or escalated it.
            get_deal(session, claim.deal_id, for_update=True)
            current = get_approval(session, claim.deal_id, claim.gate)
            if (
                current is not None
                and current.decision is None
                and not current.may_decide(claim.approver)
            ):
                raise _ReassignedMeanwhile(current.current_assignee[1])
            claimed = session.execute(
                update(Approval)
                .where(
                    Approval.deal_id == claim.deal_id,
                    Approval.gate == claim.gate,
                    Approval.decision.is_(None),
                )
                .values(
                    decision="approved" if approved else "rejected",
                    decided_by=decision.decided_by,
                    decided_by_name=approver_name,
                    comment=comment,
                    decided_at=decision.decided_at,
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                raise _DecidedMeanwhile
            # Resumed inside the transaction: if Prefect refuses, the decision is not kept.
            resume_with_answer(claim.run_id, gate_wait(claim.gate), decision)
    except _ReassignedMeanwhile as moved:
        return Outcome(
            Verdict.REFUSED, f"This gate was just handed to {moved}. Nothing was recorded."
        )
    except _DecidedMeanwhile:
        with session_scope() as session:
            row = get_approval(session, claim.deal_id, claim.gate)
            assert row is not None
            return already(row)
    except NotPausedError:
        return Outcome(Verdict.NOT_WAITING, "This deal stopped waiting for this decision just now.")
    except ObjectNotFound:
        return _RUN_GONE
    except (httpx.HTTPError, PrefectHTTPStatusError, OperationalError):
        return _UNREACHABLE
    except (RuntimeError, FlowPauseTimeout) as exc:  # Prefect refused to resume the run
        # The detail is for operations; the approver is told what to do.
        log.warning(
            "deal %s, gate %s: Prefect refused the resume: %s", claim.deal_id, claim.gate, exc
        )
        if "schema not found" in str(exc):
            # Its process died half-way through suspending: the sweep starts it again.
            return Outcome(
                Verdict.TRY_AGAIN,
                "This deal's workflow is being restarted. Nothing was recorded; try again "
                "in a few minutes.",
            )
        return Outcome(
            Verdict.NOT_WAITING,
            "The workflow server did not accept this decision. Nothing was recorded; "
            "operations can tell you why.",
        )
    with session_scope() as session:
        row = get_approval(session, claim.deal_id, claim.gate)
    verb = "approved" if approved else "rejected"
    return Outcome(Verdict.DECIDED, f"You {verb} this deal. Thank you.", row)
