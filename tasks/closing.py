"""The deal's last steps: acceptance releases its invoices, payment in full closes it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from dealflow.answers.settlement import settle_deal
from dealflow.infra.clock import utcnow
from dealflow.infra.links import LinkClaim, sign
from dealflow.infra.rendering import N_, translate
from dealflow.infra.words import Words
from models import keys
from models.finance import PaymentsSettled
from models.keys import ACCEPTANCE_WAIT
from models.matrix import MatrixPerson
from models.settings import get_settings
from models.tables import Invoice, InvoiceStatus
from tasks.deal_effect import DealEffect, deal_effect
from tasks.effect import effect_task
from tasks.email_message import OutgoingEmail


def acceptance_link(claim: LinkClaim) -> str:
    settings = get_settings()
    return f"{settings.public_base_url}/acceptance/{sign(claim, settings.signing_key())}"


@effect_task("request-acceptance")
def request_acceptance(deal_id: str, flow_run_id: str) -> None:
    """Ask the delivery manager to record the customer's acceptance (link or CLI)."""
    with deal_effect(deal_id) as effect:
        matrix, deal, settings = effect.matrix, effect.deal, effect.settings
        if effect.done(keys.ACCEPTED):
            return
        manager = matrix.first_for(matrix.handoff.delivery_role, deal.team)
        if effect.record(
            keys.ACCEPTANCE_REQUESTED,
            f"In delivery; {manager.name} records the customer's acceptance",
            stage="delivery",
        ):
            effect.wait_on(manager.email, manager.name, deal.updated_at)
        expires = deal.updated_at + dt.timedelta(days=settings.acceptance_link_ttl_days)
        effect.send(
            acceptance_request(
                effect,
                manager,
                flow_run_id,
                expires,
                key=keys.acceptance_request_mail(deal_id),
                subject=N_("Record acceptance when delivered: %(title)s (%(deal_id)s)"),
            )
        )


def acceptance_request(
    effect: DealEffect,
    manager: MatrixPerson,
    run_id: str,
    expires: dt.datetime,
    *,
    key: str,
    subject: str,
) -> OutgoingEmail:
    """The delivery manager's email with a signed acceptance link good until ``expires``,
    naming the invoices that go out on acceptance; ``subject`` in English, with the
    deal's title and id as ``%(title)s`` and ``%(deal_id)s``, is put in their language."""
    deal_id = effect.deal.id
    language = effect.matrix.language_of(manager.email, effect.deal.team)
    claim = LinkClaim(
        deal_id,
        ACCEPTANCE_WAIT,
        manager.email,
        run_id,
        int(expires.timestamp()),
        purpose="acceptance",
    )
    schedule = effect.intake.payment_terms.schedule
    return OutgoingEmail(
        key=key,
        kind="acceptance-request",
        deal_id=deal_id,
        to=[manager.email],
        subject=translate(language, subject, title=effect.deal.title, deal_id=deal_id),
        language=language,
        template="acceptance_request",
        context={
            "deal": effect.intake,
            "manager": manager,
            "link": acceptance_link(claim),
            "released": [p.label for p in schedule if p.milestone == "acceptance"],
            "expires": expires,
        },
    )


class AcceptanceLinkError(ValueError):
    """No fresh acceptance link can be sent; the message says why."""


def renew_acceptance_link(deal_id: str, by: str, now: dt.datetime | None = None) -> str:
    """Mail the delivery manager a fresh acceptance link, good for
    DEALFLOW_ACCEPTANCE_LINK_TTL_DAYS from ``now``; what was done, in words. Links sent
    before keep working until they expire."""
    now = now or utcnow()
    with deal_effect(deal_id, lock=True) as effect:
        matrix, deal, settings = effect.matrix, effect.deal, effect.settings
        if effect.done(keys.ACCEPTED):
            raise AcceptanceLinkError(f"the acceptance of {deal_id} is already recorded")
        if not effect.done(keys.ACCEPTANCE_REQUESTED) or deal.flow_run_id is None:
            raise AcceptanceLinkError(
                f"deal {deal_id} does not wait for acceptance (it is at {deal.stage})"
            )
        manager = matrix.first_for(matrix.handoff.delivery_role, deal.team)
        expires = now + dt.timedelta(days=settings.acceptance_link_ttl_days)
        renewal = keys.acceptance_link_renewed(now.isoformat(timespec="seconds"))
        effect.record(
            renewal,
            f"A fresh acceptance link was sent to {manager.name} <{manager.email}>, "
            f"good until {expires:%Y-%m-%d}",
            actor=by,
        )
        effect.send(
            acceptance_request(
                effect,
                manager,
                deal.flow_run_id,
                expires,
                key=keys.deal_mail(deal_id, renewal),
                subject=N_("New link: record acceptance when delivered: %(title)s (%(deal_id)s)"),
            )
        )
    return (
        f"Sent a fresh acceptance link for {deal_id} to {manager.name} <{manager.email}>; "
        f"it works until {expires:%Y-%m-%d %H:%M} UTC."
    )


@effect_task("await-payment")
def await_payment(deal_id: str) -> bool:
    """Mark the deal as waiting for its money; True if it is already paid in full."""
    with deal_effect(deal_id) as effect:
        matrix, deal = effect.matrix, effect.deal
        invoices = effect.session.scalars(select(Invoice).where(Invoice.deal_id == deal_id)).all()
        finance = matrix.first_for(matrix.handoff.finance_role, deal.team)
        numbers = ", ".join(i.number for i in invoices)
        if effect.record(
            keys.AWAITING_PAYMENT,
            f"All invoices issued ({numbers}); waiting for payment",
            stage="awaiting_payment",
        ):
            effect.wait_on(finance.email, finance.name, deal.updated_at)
        paid = bool(invoices) and all(i.status in InvoiceStatus.SETTLED for i in invoices)
    return paid


@effect_task("close-deal")
def close_deal(deal_id: str, settled: PaymentsSettled) -> None:
    """Close the paid deal and tell its sales rep (finance in copy)."""
    with deal_effect(deal_id) as effect:
        matrix, deal = effect.matrix, effect.deal
        invoices = effect.session.scalars(
            select(Invoice).where(Invoice.deal_id == deal_id).order_by(Invoice.sequence)
        ).all()
        effect.record(
            keys.CLOSED,
            "Paid in full: every invoice is settled; the deal is closed",
            stage="closed",
            at=settled.settled_at,
        )
        effect.waiting_on_nobody()
        deal.outcome = "paid"
        finance = [p.email for p in matrix.people_for(matrix.handoff.finance_role, deal.team)]
        language = matrix.language_of(deal.sales_rep_email, deal.team)
        effect.send(
            OutgoingEmail(
                key=keys.deal_mail(deal_id, keys.CLOSED),
                kind="deal-closed",
                deal_id=deal_id,
                to=[deal.sales_rep_email],
                cc=finance,
                subject=translate(
                    language,
                    "Paid in full: %(title)s (%(deal_id)s)",
                    title=deal.title,
                    deal_id=deal_id,
                ),
                language=language,
                template="deal_closed",
                context={"deal": effect.intake, "invoices": invoices},
            )
        )


@effect_task("close-paid-deals")
def close_paid_deals() -> list[Words]:
    """Resume every deal that is paid but still waits (its resume was lost or late); what
    happened to each, in words."""
    from dealflow.answers.settlement import settled_deals

    return [settle_deal(deal_id) for deal_id in settled_deals()]
