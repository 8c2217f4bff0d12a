"""Believing an answer a waiting deal run was resumed with, or refusing it.

Prefect's Resume (its UI's button, its REST API) takes any input that fits the schema.
An answer is believed when it carries Dealflow's proof (dealflow/infra/answer_proof.py), or
as far as Dealflow's database already records what it says (a run suspended before
answers carried proofs). Anything else is refused: nothing is recorded, the timeline
says so, and the flow waits again for the same step.
"""

from __future__ import annotations

from typing import Any, TypeVar

from prefect import get_run_logger
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from dealflow.answers.acceptance import store_acceptance
from dealflow.answers.signing import store_signature
from dealflow.finance.payments import deal_settled
from dealflow.infra.answer_proof import PROOF, is_proven
from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.records import add_transition, approvals, get_deal, store_decision
from models import keys
from models.decision import GateDecision
from models.finance import DeliveryAcceptance, PaymentsSettled
from models.keys import base_key, gate_wait
from models.settings import get_settings
from models.signing import ContractSigned
from models.tables import Approval, Deal, StageTransition
from tasks.approvals import recorded_decision
from tasks.effect import effect_task

A = TypeVar("A", bound=BaseModel)

_SHOWN = 80  # characters of each claimed value the timeline quotes


def _gate(session: Session, deal: Deal, step: str) -> Approval | None:
    return next((a for a in approvals(session, deal.id) if gate_wait(a.gate) == step), None)


def _recorded(session: Session, deal: Deal, step: str, answer: BaseModel) -> Any:
    """The answer as Dealflow's database records it, or None if it records none."""
    if isinstance(answer, GateDecision):
        row = _gate(session, deal, step)
        return recorded_decision(row) if row is not None else None
    if isinstance(answer, DeliveryAcceptance):
        actor = session.scalar(
            select(StageTransition.actor).where(
                StageTransition.deal_id == deal.id, StageTransition.key == keys.ACCEPTED
            )
        )
        return answer if actor and actor.lower() == answer.accepted_by.lower() else None
    if isinstance(answer, ContractSigned):
        actor = session.scalar(
            select(StageTransition.actor).where(
                StageTransition.deal_id == deal.id, StageTransition.key == keys.SIGNED
            )
        )
        return answer if actor and actor.lower() == answer.recorded_by.lower() else None
    if isinstance(answer, PaymentsSettled):
        return PaymentsSettled(settled_at=utcnow()) if deal_settled(session, deal.id) else None
    return None  # a stage report exists only in the answer itself


def keep_proven_answer(deal_id: str, run_id: str, step: str, answer: BaseModel) -> bool:
    """Record a proven answer the database lacks; True if it lacked it.

    Whoever answers records the answer and resumes the run in one transaction. When
    Prefect's server dies after it took the resume but before it said so, that
    transaction rolls back while the run goes on with the answer: the run records it."""
    if not isinstance(answer, GateDecision | ContractSigned | DeliveryAcceptance):
        return False  # a stage report is its own record; payments are recorded first
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        if deal.flow_run_id != run_id or _recorded(session, deal, step, answer) is not None:
            return False
        if isinstance(answer, GateDecision):
            row = _gate(session, deal, step)
            if row is None or row.decision is not None:
                return False
            store_decision(row, answer)
        elif isinstance(answer, ContractSigned):
            store_signature(session, deal, answer)
        else:
            store_acceptance(session, deal, answer)
    return True


def _claims(answer: BaseModel) -> str:
    fields = answer.model_dump(mode="json", exclude_unset=True, exclude={PROOF})
    shown = (f"{name}={str(value)[:_SHOWN]}" for name, value in fields.items())
    return ", ".join(shown)[: 8 * _SHOWN]


@effect_task("check-answer")
def check_answer(deal_id: str, run_id: str, key: str, answer: A) -> A | None:
    """The answer to believe, or None (noted on the timeline) if it proves nothing."""
    settings = get_settings()
    # With the previous secret too, while it is set: an answer proven just before the
    # secret was rotated may reach its run just after.
    signing_keys = [settings.signing_key(), settings.previous_signing_key()]
    if any(is_proven(run_id, key, answer, k) for k in signing_keys if k):
        if keep_proven_answer(deal_id, run_id, base_key(key), answer):
            get_run_logger().warning(
                f"Recorded the answer to {base_key(key)} from the run: Prefect took it, but "
                "the commit of whoever answered was lost (a server died in between)"
            )
        return answer
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        recorded = _recorded(session, deal, base_key(key), answer)
        if recorded is not None:
            return recorded
        still = deal.waiting_on_name or deal.waiting_on or "its next step"
        refusal = (
            f"Refused an answer sent through Prefect's API without Dealflow's proof "
            f"({_claims(answer)}): nothing was recorded; the deal still waits on {still}"
        )
        noted = add_transition(
            session,
            deal,
            key=keys.answer_refused(key, deal.revision),
            stage=deal.stage,
            actor="prefect-api",
            event=refusal,
        )
    if noted:  # ops watching the run see it too: Prefect itself said "Flow run resumed"
        get_run_logger().warning(f"{refusal}. Decisions are made from Dealflow's links.")
    return None
