"""The delivery manager confirms the delivery plan with the customer (the handbook: 5
business days before the start); until then the pipeline board counts the plan as late
once that date has passed."""

from __future__ import annotations

from dealflow.infra.db import session_scope
from dealflow.infra.records import add_transition, get_deal
from models.keys import PLAN_CONFIRMED


class PlanError(ValueError):
    """Nothing was recorded; the message says why."""


def confirm_plan(deal_id: str, by: str, note: str = "") -> bool:
    """Record the confirmation once; False if it was recorded before."""
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        if deal.outcome in {"rejected", "lost"} or deal.stage in {"lead_screening", "quote"}:
            raise PlanError(f"deal {deal_id} has no delivery (it is at {deal.stage})")
        return add_transition(
            session,
            deal,
            key=PLAN_CONFIRMED,
            stage=deal.stage,
            event="Delivery plan confirmed with the customer" + (f": {note}" if note else ""),
            actor=by,
        )
