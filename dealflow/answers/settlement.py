"""Closing paid deals: a deal whose invoices are all settled resumes its waiting run."""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from dealflow.answers.waiting_run import (
    Answered,
    Earlier,
    Patience,
    Why,
    answer_waiting_run,
)
from dealflow.finance.payments import deal_settled
from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.words import Words
from models import keys
from models.finance import PaymentsSettled
from models.keys import PAYMENT_WAIT
from models.tables import Deal, Invoice, InvoiceStatus, StageTransition


class _NotSettled(Exception):
    pass


def settle_deal(deal_id: str, last_payment: str = "", patience: Patience | None = None) -> Words:
    """Resume the deal's run if it waits for payment and nothing is left to pay; what
    happened, in Words (English as a string; finance's digest and page translate them).
    Never raises for Prefect being away: the next payment check
    tries again.

    The answer is its own record: the payments are stored before, and the run closes the
    deal (timeline key ``closed``) once resumed; a deal closed already was answered.
    """
    with session_scope() as session:
        if not deal_settled(session, deal_id):
            return Words("%(deal)s: not settled yet", deal=deal_id)

    def earlier(session: Session, deal: Deal) -> Earlier | None:
        closed = session.scalar(
            select(StageTransition).where(
                StageTransition.deal_id == deal.id, StageTransition.key == keys.CLOSED
            )
        )
        return Earlier(closed.actor, closed.at, keys.CLOSED) if closed is not None else None

    def record(session: Session, deal: Deal) -> PaymentsSettled:
        if not deal_settled(session, deal.id):  # a payment was taken back meanwhile
            raise _NotSettled
        return PaymentsSettled(settled_at=utcnow(), last_payment=last_payment)

    try:
        answered = answer_waiting_run(
            deal_id, PAYMENT_WAIT, record=record, earlier=earlier, patience=patience
        )
    except _NotSettled:
        return Words("%(deal)s: not settled yet", deal=deal_id)
    if answered.kind is Answered.RESUMED:
        return Words("%(deal)s: paid in full, closing", deal=deal_id)
    if answered.earlier is not None:
        if answered.earlier.at:
            return Words(
                "%(deal)s: paid; closed already at %(at)s", deal=deal_id, at=answered.earlier.at
            )
        return Words("%(deal)s: paid; closed already", deal=deal_id)
    match answered.why:
        case Why.NO_RUN | Why.OTHER_RUN:
            return Words("%(deal)s: paid, but it has no flow run", deal=deal_id)
        case Why.RUN_GONE:
            return Words("%(deal)s: paid, but its flow run no longer exists", deal=deal_id)
        case Why.UNREACHABLE | Why.REFUSED | Why.RESTARTING:
            return Words(
                "%(deal)s: paid; the workflow server did not take it (%(detail)s); the next "
                "check retries",
                deal=deal_id,
                detail=answered.detail or answered.why.value,
            )
        case Why.ON_ITS_WAY | Why.CRASHED:
            return Words(
                "%(deal)s: paid; its run is %(state)s, not waiting for payment yet; the next "
                "check retries",
                deal=deal_id,
                state=answered.state,
            )
    return Words(
        "%(deal)s: paid; its run is %(state)s, not waiting for payment",
        deal=deal_id,
        state=answered.state,
    )


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
