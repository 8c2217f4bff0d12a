"""Closing paid deals: a deal whose invoices are all settled resumes its waiting run."""

from __future__ import annotations

import time

import httpx
from prefect.exceptions import NotPausedError, ObjectNotFound, PrefectHTTPStatusError
from sqlalchemy import exists, select

from dealflow.finance.payments import deal_settled
from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.prefect_api import pause_state, resume_with_answer
from dealflow.infra.records import get_deal
from models.finance import PaymentsSettled
from models.keys import PAYMENT_WAIT, waits_for
from models.settings import get_settings
from models.tables import Deal, Invoice, InvoiceStatus


def settle_deal(deal_id: str, last_payment: str = "") -> str:
    """Resume the deal's run if it waits for payment and nothing is left to pay; what
    happened, in words. Never raises for Prefect being away: the next payment check
    tries again."""
    with session_scope() as session:
        if not deal_settled(session, deal_id):
            return f"{deal_id}: not settled yet"
        run_id = get_deal(session, deal_id).flow_run_id
    if run_id is None:
        return f"{deal_id}: paid, but it has no flow run"
    try:
        state, key = _wait_for_payment_step(run_id)
        if state != "PAUSED" or not waits_for(key, PAYMENT_WAIT):
            return f"{deal_id}: paid; its run is {state.lower()}, not waiting for payment"
        settled = PaymentsSettled(settled_at=utcnow(), last_payment=last_payment)
        resume_with_answer(run_id, PAYMENT_WAIT, settled)
    except NotPausedError:
        return f"{deal_id}: paid; its run stopped waiting just now"
    except (httpx.HTTPError, PrefectHTTPStatusError, ObjectNotFound, RuntimeError) as exc:
        return (
            f"{deal_id}: paid; the workflow server did not take it ({exc}); the next check retries"
        )
    return f"{deal_id}: paid in full, closing"


def _wait_for_payment_step(run_id: str) -> tuple[str, str | None]:
    """The run's state once it waits for payment, ends, or the patience runs out. A
    payment recorded while the run is on its way to that step (it checks for payment
    just before it suspends) would otherwise leave it waiting until the next check."""
    deadline = time.monotonic() + get_settings().resume_wait_seconds
    while True:
        state, key = pause_state(run_id)
        on_its_way = state in {"RUNNING", "PENDING", "SCHEDULED"} or (
            state == "PAUSED" and key is None
        )
        if not on_its_way or time.monotonic() > deadline:
            return state, key
        time.sleep(0.2)


def settled_deals() -> list[str]:
    """Deals waiting for payment with nothing left to pay (those a resume was lost for)."""
    unsettled = (
        select(Invoice.id)
        .where(Invoice.deal_id == Deal.id, Invoice.status.not_in(InvoiceStatus.SETTLED))
        .correlate(Deal)
    )
    with session_scope() as session:
        return list(
            session.scalars(
                select(Deal.id)
                .where(Deal.stage == "awaiting_payment", ~exists(unsettled))
                .order_by(Deal.id)
            )
        )
