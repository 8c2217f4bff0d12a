"""After the last approval: delivery kickoff and the invoices due so far."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select

from dealflow.infra.clock import utcnow
from models import keys
from models.deal import DealIntake, Milestone
from models.tables import Invoice
from tasks.deal_effect import deal_effect
from tasks.effect import effect_task
from tasks.mailer import OutgoingEmail

INVOICED_AT_HANDOFF = frozenset({Milestone.SIGNING, Milestone.KICKOFF})
INVOICED_AT_ACCEPTANCE = frozenset({Milestone.ACCEPTANCE})


def installment_amounts(intake: DealIntake, issued: dict[int, Decimal]) -> list[Decimal]:
    """Each installment's invoice amount. Installments already invoiced (``issued``, by
    sequence) keep their amounts, perhaps split by an earlier release's rounding; the
    last one still to issue takes what is left, so the invoices add up to the deal."""
    amounts = intake.installment_amounts()
    for sequence, amount in issued.items():
        amounts[sequence - 1] = amount
    pending = [i for i in range(len(amounts)) if i + 1 not in issued]
    if issued and pending:
        last = pending[-1]
        amounts[last] = intake.amount - sum(amounts[:last] + amounts[last + 1 :], Decimal(0))
    return amounts


def invoice_number(deal_id: str, sequence: int) -> str:
    # Upper case: people and banks type references in any case, and lookups upper-case them.
    return f"INV-{deal_id.upper()}-{sequence:02d}"


@effect_task("kick-off-delivery")
def kick_off_delivery(deal_id: str) -> None:
    """Hand the deal to its delivery manager, with the date the plan must be confirmed by."""
    with deal_effect(deal_id) as effect:
        matrix, deal = effect.matrix, effect.deal
        manager = matrix.first_for(matrix.handoff.delivery_role, deal.team)
        confirm_by = matrix.calendar(deal.team).add_business_days(
            effect.intake.delivery_start, -matrix.handoff.plan_confirmation_business_days
        )
        effect.record(
            keys.KICKOFF,
            f"Delivery handed to {manager.name} <{manager.email}>; plan to be confirmed "
            f"with the customer by {confirm_by.isoformat()}",
            stage="delivery_kickoff",
        )
        effect.send(
            OutgoingEmail(
                key=keys.deal_mail(deal_id, keys.KICKOFF),
                kind="kickoff",
                deal_id=deal_id,
                to=[manager.email],
                cc=[deal.sales_rep_email],
                subject=f"Delivery kickoff: {deal.title} ({deal_id})",
                template="kickoff",
                context={"deal": effect.intake, "manager": manager, "confirm_by": confirm_by},
            )
        )


@effect_task("issue-invoices")
def issue_invoices(
    deal_id: str, milestones: frozenset[Milestone] = INVOICED_AT_HANDOFF
) -> list[str]:
    """Create the invoices of the payment schedule due at ``milestones`` (once each) and
    send them to the billing contact. A due date that falls on a weekend or public
    holiday of the team's calendar moves to the next business day."""
    mails: list[OutgoingEmail] = []
    with deal_effect(deal_id) as effect:
        matrix, deal, session, intake = effect.matrix, effect.deal, effect.session, effect.intake
        calendar = matrix.calendar(deal.team)
        today = utcnow().astimezone(calendar.zone).date()  # the team's day
        finance = [p.email for p in matrix.people_for(matrix.handoff.finance_role, deal.team)]
        existing = {
            inv.sequence: inv
            for inv in session.scalars(select(Invoice).where(Invoice.deal_id == deal_id))
        }
        amounts = installment_amounts(
            intake, {number: invoice.amount for number, invoice in existing.items()}
        )
        for sequence, (part, amount) in enumerate(
            zip(intake.payment_terms.schedule, amounts, strict=True), start=1
        ):
            if part.milestone not in milestones:
                continue
            invoice = existing.get(sequence)
            if invoice is None:
                invoice = Invoice(
                    deal_id=deal_id,
                    number=invoice_number(deal_id, sequence),
                    sequence=sequence,
                    label=part.label,
                    milestone=part.milestone.value,
                    amount=amount,
                    currency=intake.currency,
                    issue_date=today,
                    due_date=calendar.on_or_after(
                        today + dt.timedelta(days=intake.payment_terms.net_days)
                    ),
                    status="open",
                    billing_email=intake.customer.billing_contact.email,
                    customer_name=deal.customer_name,
                    created_at=utcnow(),
                )
                session.add(invoice)
                session.flush()
            mails.append(
                OutgoingEmail(
                    key=keys.invoice_mail(deal_id, invoice.number),
                    kind="invoice",
                    deal_id=deal_id,
                    to=[invoice.billing_email],
                    cc=finance,
                    subject=f"Invoice {invoice.number} for {intake.title}",
                    template="invoice",
                    context={"deal": intake, "invoice": invoice, "part": part},
                )
            )
        numbers = ", ".join(keys.invoice_number_of_mail(m.key) for m in mails)
        if milestones == INVOICED_AT_HANDOFF:
            later = [
                p.label for p in intake.payment_terms.schedule if p.milestone not in milestones
            ]
            effect.record(
                keys.INVOICED,
                f"Invoices issued: {numbers or 'none'}"
                + (f"; on delivery acceptance: {', '.join(later)}" if later else ""),
                stage="invoiced",
            )
            if deal.outcome is None:
                effect.waiting_on_nobody()
                deal.outcome = "handed_off"
        elif mails:
            effect.record(
                keys.invoiced_milestones(milestones),
                f"Invoices issued on {' and '.join(sorted(milestones))}: {numbers}",
                stage="invoiced",
            )
        for mail in mails:
            effect.send(mail)
    return [keys.invoice_number_of_mail(m.key) for m in mails]
