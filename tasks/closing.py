"""The deal's last steps: acceptance releases its invoices, payment in full closes it."""

from __future__ import annotations

from sqlalchemy import select

from dealflow.answers.settlement import settle_deal
from dealflow.infra.db import session_scope
from dealflow.infra.links import ApprovalClaim, sign
from dealflow.infra.records import add_transition, get_deal, intake_of, wait_on
from models import keys
from models.finance import DeliveryAcceptance, PaymentsSettled
from models.keys import ACCEPTANCE_WAIT
from models.matrix import load_matrix
from models.settings import get_settings
from models.tables import Invoice, InvoiceStatus, StageTransition
from tasks.effect import effect_task
from tasks.mailer import OutgoingEmail, deliver_or_queue


def acceptance_link(claim: ApprovalClaim) -> str:
    settings = get_settings()
    return f"{settings.public_base_url}/acceptance/{sign(claim, settings.signing_key())}"


@effect_task("request-acceptance")
def request_acceptance(deal_id: str, flow_run_id: str) -> None:
    """Ask the delivery manager to record the customer's acceptance (link or CLI)."""
    settings = get_settings()
    matrix = load_matrix(settings.matrix_path)
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        if session.scalar(
            select(StageTransition.id).where(
                StageTransition.deal_id == deal_id, StageTransition.key == keys.ACCEPTED
            )
        ):
            return
        intake = intake_of(deal)
        manager = matrix.first_for(matrix.handoff.delivery_role, deal.team)
        if add_transition(
            session,
            deal,
            key=keys.ACCEPTANCE_REQUESTED,
            stage="delivery",
            event=f"In delivery; {manager.name} records the customer's acceptance",
            actor="dealflow",
        ):
            wait_on(deal, manager.email, manager.name, deal.updated_at)
        later = [p.label for p in intake.payment_terms.schedule if p.milestone == "acceptance"]
        expires = deal.updated_at.timestamp() + settings.acceptance_link_ttl_days * 86400
        claim = ApprovalClaim(
            deal_id, ACCEPTANCE_WAIT, manager.email, flow_run_id, int(expires), purpose="acceptance"
        )
        mail = OutgoingEmail(
            key=keys.acceptance_request_mail(deal_id),
            kind="acceptance-request",
            deal_id=deal_id,
            to=[manager.email],
            subject=f"Record acceptance when delivered: {deal.title} ({deal_id})",
            template="acceptance_request",
            context={
                "deal": intake,
                "manager": manager,
                "link": acceptance_link(claim),
                "released": later,
            },
        )
    deliver_or_queue(mail)


@effect_task("record-acceptance")
def record_acceptance(deal_id: str, acceptance: DeliveryAcceptance) -> None:
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        add_transition(
            session,
            deal,
            key=keys.ACCEPTED,
            stage="accepted",
            event=f"Delivery accepted by the customer on {acceptance.accepted_on.isoformat()}"
            + (f": {acceptance.note}" if acceptance.note else ""),
            actor=acceptance.accepted_by,
        )


@effect_task("await-payment")
def await_payment(deal_id: str) -> bool:
    """Mark the deal as waiting for its money; True if it is already paid in full."""
    matrix = load_matrix(get_settings().matrix_path)
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        invoices = session.scalars(select(Invoice).where(Invoice.deal_id == deal_id)).all()
        finance = matrix.first_for(matrix.handoff.finance_role, deal.team)
        numbers = ", ".join(i.number for i in invoices)
        if add_transition(
            session,
            deal,
            key=keys.AWAITING_PAYMENT,
            stage="awaiting_payment",
            event=f"All invoices issued ({numbers}); waiting for payment",
            actor="dealflow",
        ):
            wait_on(deal, finance.email, finance.name, deal.updated_at)
        paid = bool(invoices) and all(i.status in InvoiceStatus.SETTLED for i in invoices)
    return paid


@effect_task("close-deal")
def close_deal(deal_id: str, settled: PaymentsSettled) -> None:
    """Close the paid deal and tell its sales rep (finance in copy)."""
    matrix = load_matrix(get_settings().matrix_path)
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        intake = intake_of(deal)
        invoices = session.scalars(
            select(Invoice).where(Invoice.deal_id == deal_id).order_by(Invoice.sequence)
        ).all()
        add_transition(
            session,
            deal,
            key=keys.CLOSED,
            stage="closed",
            event="Paid in full: every invoice is settled; the deal is closed",
            actor="dealflow",
            at=settled.settled_at,
        )
        wait_on(deal, None, None, None)
        deal.outcome = "paid"
        finance = [p.email for p in matrix.people_for(matrix.handoff.finance_role, deal.team)]
        mail = OutgoingEmail(
            key=keys.deal_mail(deal_id, keys.CLOSED),
            kind="deal-closed",
            deal_id=deal_id,
            to=[deal.sales_rep_email],
            cc=finance,
            subject=f"Paid in full: {deal.title} ({deal_id})",
            template="deal_closed",
            context={"deal": intake, "invoices": invoices},
        )
    deliver_or_queue(mail)


@effect_task("close-paid-deals")
def close_paid_deals() -> list[str]:
    """Resume every deal that is paid but still waits (its resume was lost or late)."""
    from dealflow.answers.settlement import settled_deals

    return [settle_deal(deal_id) for deal_id in settled_deals()]
