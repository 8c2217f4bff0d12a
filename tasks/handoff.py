"""After the last approval: delivery kickoff and the invoices due so far."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select

from dealflow.infra.clock import utcnow
from dealflow.infra.links import Purpose
from dealflow.infra.records import timeline
from dealflow.infra.rendering import translate
from models import keys
from models.deal import DealIntake, Installment, Milestone
from models.handoff import HandoffPlan
from models.tables import Invoice
from tasks.deal_effect import DealEffect, deal_effect
from tasks.duty_links import duty_link
from tasks.effect import effect_task
from tasks.email_message import OutgoingEmail

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


@effect_task("plan-handoff")
def plan_handoff(deal_id: str) -> HandoffPlan:
    """Which steps after the approvals an earlier pass of the run finished."""
    with deal_effect(deal_id) as effect:
        recorded = {t.key for t in timeline(effect.session, deal_id)}
        no_success_role = effect.matrix.handoff.success_role is None
    accepted = keys.ACCEPTED in recorded
    handed_over = keys.ACCEPTANCE_REQUESTED in recorded or accepted
    return HandoffPlan(
        # A deal kicked off by a release before signing was a step is not asked to sign.
        signed=keys.SIGNED in recorded or keys.KICKOFF in recorded or handed_over,
        handed_over=handed_over,
        accepted=accepted,
        handed_to_success=no_success_role or keys.AWAITING_PAYMENT in recorded,
        invoiced_at_acceptance=keys.AWAITING_PAYMENT in recorded,
    )


@effect_task("kick-off-delivery")
def kick_off_delivery(deal_id: str) -> None:
    """Hand the deal to its delivery manager, with the date the plan must be confirmed by;
    the sales rep and customer success (the matrix's ``success_role``) in copy."""
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
        language = matrix.language_of(manager.email, deal.team)
        # Customer success, who takes the deal over after the acceptance, is told now.
        role = matrix.handoff.success_role
        success = [
            p
            for p in (matrix.people_for(role, deal.team) if role else [])
            if p.email not in (manager.email, deal.sales_rep_email)
        ]
        effect.send(
            OutgoingEmail(
                key=keys.deal_mail(deal_id, keys.KICKOFF),
                kind="kickoff",
                deal_id=deal_id,
                to=[manager.email],
                cc=[deal.sales_rep_email, *(p.email for p in success)],
                subject=translate(
                    language,
                    "Delivery kickoff: %(title)s (%(deal_id)s)",
                    title=deal.title,
                    deal_id=deal_id,
                ),
                language=language,
                template="kickoff",
                context={
                    "deal": effect.intake,
                    "manager": manager,
                    "confirm_by": confirm_by,
                    "success": ", ".join(p.name for p in success),
                    # The rep records each delivery week's progress report there.
                    "progress_link": duty_link(Purpose.PROGRESS, deal, utcnow())
                    if matrix.handoff.progress_every_days is not None
                    else None,
                },
            )
        )


@effect_task("issue-invoices")
def issue_invoices(
    deal_id: str, milestones: frozenset[Milestone] = INVOICED_AT_HANDOFF
) -> list[str]:
    """Create the invoices of the payment schedule due at ``milestones`` (once each) and
    send them to the billing contact. A due date that falls on a weekend or public
    holiday of the team's calendar moves to the next business day."""
    with deal_effect(deal_id) as effect:
        matrix, deal = effect.matrix, effect.deal
        finance = [p.email for p in matrix.people_for(matrix.handoff.finance_role, deal.team)]
        mails = [
            _invoice_mail(
                effect.intake, invoice, part, finance, matrix.customer_language(effect.intake)
            )
            for invoice, part in _invoices_due(effect, milestones)
        ]
        _record_issued(effect, milestones, mails)
        for mail in mails:
            effect.send(mail)
    return [keys.invoice_number_of_mail(m.key) for m in mails]


def _invoices_due(
    effect: DealEffect, milestones: frozenset[Milestone]
) -> list[tuple[Invoice, Installment]]:
    """The schedule's installments due at ``milestones``, each with its invoice, created
    the first time: issued on the team's today, due its net days later."""
    deal, session, intake = effect.deal, effect.session, effect.intake
    calendar = effect.matrix.calendar(deal.team)
    today = utcnow().astimezone(calendar.zone).date()  # the team's day
    existing = {
        inv.sequence: inv
        for inv in session.scalars(select(Invoice).where(Invoice.deal_id == deal.id))
    }
    amounts = installment_amounts(
        intake, {number: invoice.amount for number, invoice in existing.items()}
    )
    due = []
    for sequence, (part, amount) in enumerate(
        zip(intake.payment_terms.schedule, amounts, strict=True), start=1
    ):
        if part.milestone not in milestones:
            continue
        invoice = existing.get(sequence)
        if invoice is None:
            invoice = Invoice(
                deal_id=deal.id,
                number=invoice_number(deal.id, sequence),
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
        due.append((invoice, part))
    return due


def _invoice_mail(
    intake: DealIntake, invoice: Invoice, part: Installment, finance: list[str], language: str
) -> OutgoingEmail:
    """The invoice to the billing contact, in the customer's ``language``."""
    return OutgoingEmail(
        key=keys.invoice_mail(invoice.deal_id, invoice.number),
        kind="invoice",
        deal_id=invoice.deal_id,
        to=[invoice.billing_email],
        cc=finance,
        subject=translate(
            language,
            "Invoice %(number)s for %(title)s",
            number=invoice.number,
            title=intake.title,
        ),
        language=language,
        template="invoice",
        context={"deal": intake, "invoice": invoice, "part": part},
    )


def _record_issued(
    effect: DealEffect, milestones: frozenset[Milestone], mails: list[OutgoingEmail]
) -> None:
    """On the timeline: the invoices issued at handoff (and those that wait for the
    delivery's acceptance), which hands the deal off; or those issued at a later
    milestone, if any."""
    deal, intake = effect.deal, effect.intake
    numbers = ", ".join(keys.invoice_number_of_mail(m.key) for m in mails)
    if milestones == INVOICED_AT_HANDOFF:
        later = [p.label for p in intake.payment_terms.schedule if p.milestone not in milestones]
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
