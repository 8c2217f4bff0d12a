"""After the last approval: the sales rep records the signed contract (the run waits for
it, key ``signing``), and administration archives it within its business days."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from dealflow.infra.clock import utcnow
from dealflow.infra.links import LinkClaim, Purpose, sign
from dealflow.infra.rendering import translate
from models import keys
from models.deal import DealIntake
from models.keys import SIGNING_WAIT
from models.matrix import Matrix
from models.settings import get_settings
from models.tables import Deal, StageTransition
from tasks.deal_effect import deal_effect
from tasks.effect import effect_task
from tasks.email_message import OutgoingEmail
from tasks.handoff import INVOICED_AT_HANDOFF

SIGNING_STAGE = "signing"  # the deal's stage while its run waits for the signed contract


def signing_link(claim: LinkClaim) -> str:
    settings = get_settings()
    return f"{settings.public_base_url}/signing/{sign(claim, settings.signing_key())}"


@effect_task("request-signing")
def request_signing(deal_id: str, flow_run_id: str) -> None:
    """Ask the sales rep to record the signed contract (link or ``dealflow deal sign``)."""
    with deal_effect(deal_id) as effect:
        matrix, deal, settings = effect.matrix, effect.deal, effect.settings
        if effect.done(keys.SIGNED):
            return
        if effect.record(
            keys.SIGNING_REQUESTED,
            f"Approved; {deal.sales_rep_name} records the contract signed by the customer",
            stage=SIGNING_STAGE,
        ):
            effect.wait_on(deal.sales_rep_email, deal.sales_rep_name, deal.updated_at)
        expires = deal.updated_at + dt.timedelta(days=settings.signing_link_ttl_days)
        claim = LinkClaim(
            deal_id,
            SIGNING_WAIT,
            deal.sales_rep_email,
            flow_run_id,
            int(expires.timestamp()),
            purpose=Purpose.SIGNING.value,
        )
        language = matrix.language_of(deal.sales_rep_email, deal.team)
        effect.send(
            OutgoingEmail(
                key=keys.signing_request_mail(deal_id),
                kind="signing-request",
                deal_id=deal_id,
                to=[deal.sales_rep_email],
                subject=translate(
                    language,
                    "Record the signed contract: %(title)s (%(deal_id)s)",
                    title=deal.title,
                    deal_id=deal_id,
                ),
                language=language,
                template="signing_request",
                context={
                    "deal": effect.intake,
                    "link": signing_link(claim),
                    "expires": expires,
                    "due_now": due_at_handoff(effect.intake),
                },
            )
        )


def due_at_handoff(intake: DealIntake) -> list[str]:
    """The installments invoiced once the contract is signed (at signing and kickoff)."""
    return [p.label for p in intake.payment_terms.schedule if p.milestone in INVOICED_AT_HANDOFF]


def archive_due(matrix: Matrix, deal: Deal, requested_at: dt.datetime) -> dt.date:
    """The team's day by which the deal's signed contract is to be archived."""
    return matrix.archive_due(deal.team, requested_at)


@effect_task("request-archiving")
def request_archiving(deal_id: str) -> None:
    """Tell administration the contract is signed and is to be archived by its day. A duty
    beside the run: nothing waits for it (the sla-sweep follows it up). Nothing for a deal
    signed before signing was recorded, or when the matrix names no archive role."""
    with deal_effect(deal_id) as effect:
        matrix, deal = effect.matrix, effect.deal
        role = matrix.handoff.archive_role
        if role is None or not effect.done(keys.SIGNED) or effect.done(keys.ARCHIVED):
            return
        people = matrix.people_for(role, deal.team)
        now = utcnow()
        due = archive_due(matrix, deal, now)
        effect.record(
            keys.ARCHIVE_REQUESTED,
            f"Signed contract to be archived by {', '.join(p.name for p in people)} "
            f"by {due.isoformat()}",
            at=now,
        )
        requested = _entry(effect.session, deal_id, keys.ARCHIVE_REQUESTED)
        signed = _entry(effect.session, deal_id, keys.SIGNED)
        due = archive_due(matrix, deal, requested.at if requested is not None else now)
        language = matrix.language_of(people[0].email, deal.team)
        effect.send(
            OutgoingEmail(
                key=keys.archive_request_mail(deal_id),
                kind="archive-request",
                deal_id=deal_id,
                to=[p.email for p in people],
                cc=[deal.sales_rep_email],
                subject=translate(
                    language,
                    "Archive the signed contract: %(title)s (%(deal_id)s)",
                    title=deal.title,
                    deal_id=deal_id,
                ),
                language=language,
                template="archive_request",
                context={
                    "deal": effect.intake,
                    "due": due,
                    "signed": signed.event if signed is not None else "",
                },
            )
        )


def _entry(session: Session, deal_id: str, key: str) -> StageTransition | None:
    return session.scalar(
        select(StageTransition).where(
            StageTransition.deal_id == deal_id, StageTransition.key == key
        )
    )
