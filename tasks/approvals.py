"""Approval gates: plan who approves, ask them, record what they decided."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from dealflow.infra.clock import utcnow
from dealflow.infra.links import LinkClaim, sign
from dealflow.infra.records import (
    add_transition,
    approvals,
    changes_for_gate,
    get_approval,
    people_on_deal,
    timeline,
    wait_on,
)
from dealflow.infra.rendering import translate
from models import keys
from models.decision import GateDecision
from models.gates import GatePlan, approval_stage
from models.language import ENGLISH
from models.matrix import Matrix
from models.settings import get_settings
from models.tables import Approval, Deal
from tasks.deal_effect import deal_effect
from tasks.effect import effect_task
from tasks.email_message import OutgoingEmail


def recorded_decision(row: Approval) -> GateDecision | None:
    """The gate's decision as Dealflow recorded it, if it did."""
    if row.decision is None or row.decided_at is None:
        return None
    return GateDecision(
        approved=row.decision == "approved",
        decided_by=row.decided_by or "",
        decided_by_name=row.decided_by_name or "",
        comment=row.comment or "",
        decided_at=row.decided_at,
    )


def _plan(row: Approval, title: str, on_timeline: set[str]) -> GatePlan:
    return GatePlan(
        name=row.gate,
        title=title,
        role=row.role,
        assignee_email=row.assignee_email,
        assignee_name=row.assignee_name,
        decision=recorded_decision(row),
        recorded=keys.gate_decided(row.gate, row.revision) in on_timeline,
        revision=row.revision,
    )


@effect_task("plan-approvals")
def plan_approvals(deal_id: str, revision: int | None = None) -> list[GatePlan]:
    """Fix the deal's approval route from the matrix, once; later passes read it back,
    each gate with its decision and whether that is on the timeline yet.

    ``revision``: the revision the run carries (default: the deal's current one). Once a
    later revision replaced it, its gates are read back as they were and no route is
    planned: the new revision's run plans its own."""
    with deal_effect(deal_id) as effect:
        session, deal, matrix = effect.session, effect.deal, effect.matrix
        replaced = revision is not None and revision != deal.revision
        rows = approvals(session, deal_id, revision)
        if not rows and not replaced:
            route = matrix.route(effect.intake)
            for position, (gate, person) in enumerate(route.steps):
                session.add(
                    Approval(
                        deal_id=deal_id,
                        revision=deal.revision,
                        gate=gate.name,
                        position=position,
                        role=gate.role,
                        assignee_email=person.email,
                        assignee_name=person.name,
                    )
                )
            deal.matrix_version = matrix.label
            again = f" for revision {deal.revision}" if deal.revision > 1 else ""
            effect.record(
                keys.routed(deal.revision),
                f"Approval route{again} from matrix {matrix.label}, {route.describe()}",
            )
            session.flush()
            rows = approvals(session, deal_id)
        titles = {gate.name: gate.title for gate in matrix.gates}
        on_timeline = {t.key for t in timeline(session, deal_id)}
        return [_plan(row, titles.get(row.gate, row.gate), on_timeline) for row in rows]


def hand_to_delegate(
    session: Session, matrix: Matrix, deal: Deal, row: Approval, at: dt.datetime
) -> str | None:
    """If the gate's assignee is away at ``at``, give the gate to whoever acts for them
    (four eyes permitting) and say so on the timeline; the name of the absent person."""
    if row.escalated_to or row.decision:
        return None
    day = at.astimezone(matrix.calendar(deal.team).zone).date()
    acting = matrix.acting_for(row.assignee_email, day)
    if acting is None:
        return None
    delegate, delegation = acting
    absent = row.assignee_name
    on_deal = people_on_deal(session, deal, except_gate=row.gate)
    why = f" ({delegation.reason})" if delegation.reason else ""
    if delegate.email.lower() in on_deal:
        add_transition(
            session,
            deal,
            key=keys.gate_delegation_refused(row.gate, delegate.id, deal.revision),
            stage=approval_stage(row.gate),
            actor="dealflow",
            at=at,
            event=f"{absent} is away{why}, but {delegate.name} is already on this deal: "
            f"the gate stays with {absent}",
        )
        return None
    row.assignee_email, row.assignee_name = delegate.email, delegate.name
    add_transition(
        session,
        deal,
        key=keys.gate_delegated(row.gate, delegate.id, deal.revision),
        stage=approval_stage(row.gate),
        actor="dealflow",
        at=at,
        event=f"{absent} is away{why} until {delegation.end}: {delegate.name} "
        f"<{delegate.email}> acts for them on this gate",
    )
    if deal.waiting_on:
        wait_on(deal, delegate.email, delegate.name, deal.waiting_since)
    return absent


def approval_link(claim: LinkClaim) -> str:
    settings = get_settings()
    return f"{settings.public_base_url}/approvals/{sign(claim, settings.signing_key())}"


@effect_task("request-approval")
def request_approval(deal_id: str, gate: GatePlan, flow_run_id: str) -> None:
    """Record that the gate waits on its assignee (or whoever acts for them while they
    are away) and email them a signed link, once."""
    with deal_effect(deal_id) as effect:
        session, deal, settings = effect.session, effect.deal, effect.settings
        if gate.revision != deal.revision:
            return  # a later revision replaced the gate's: its own run asks again
        row = get_approval(session, deal_id, gate.name)
        assert row is not None, f"gate {gate.name} of {deal_id} was never planned"
        if row.decision is not None:
            return
        on_behalf_of = None
        if row.requested_at is None:
            row.requested_at = utcnow()
            on_behalf_of = hand_to_delegate(session, effect.matrix, deal, row, row.requested_at)
        effect.record(
            keys.gate_requested(gate.name, deal.revision),
            f"{gate.title} requested from {row.assignee_name} <{row.assignee_email}>",
            stage=approval_stage(gate.name),
            at=row.requested_at,
        )
        effect.wait_on(row.assignee_email, row.assignee_name, row.requested_at)
        expires = row.requested_at + dt.timedelta(hours=settings.link_ttl_hours)
        link = approval_link(
            LinkClaim(
                deal_id=deal_id,
                gate=gate.name,
                approver=row.assignee_email,
                run_id=flow_run_id,
                expires_at=int(expires.timestamp()),
            )
        )
        language = effect.matrix.language_of(row.assignee_email, deal.team)
        title = _gate_title(effect.matrix, gate, language)
        effect.send(
            OutgoingEmail(
                key=keys.gate_request_mail(deal_id, gate.name, deal.revision),
                kind="approval-request",
                deal_id=deal_id,
                to=[row.assignee_email],
                subject=translate(
                    language,
                    "Approval needed: %(title)s (%(deal_id)s) - %(gate)s",
                    title=deal.title,
                    deal_id=deal_id,
                    gate=title,
                ),
                language=language,
                template="approval_request",
                context={
                    "deal": effect.intake,
                    "gate": gate.model_copy(
                        update={
                            "assignee_name": row.assignee_name,
                            "assignee_email": row.assignee_email,
                            "title": title,
                        }
                    ),
                    "link": link,
                    "expires": expires,
                    "earlier": [a for a in approvals(session, deal_id) if a.decision],
                    "on_behalf_of": on_behalf_of,
                    "revised": changes_for_gate(session, deal, gate.name),
                },
            )
        )


@effect_task("record-decision")
def record_decision(deal_id: str, gate: GatePlan, decision: GateDecision) -> None:
    """Put the approver's decision on the deal's timeline. The web service recorded the
    decision itself before it resumed the run (dealflow/answers/waiting_run.py); an answer
    it did not record is never believed (tasks/answers.py)."""
    verdict = "approved" if decision.approved else "rejected"
    with deal_effect(deal_id) as effect:
        deal = effect.deal
        if gate.revision != deal.revision:
            return  # recorded before the revision that replaced the gate's was stored
        who = decision.decided_by_name or decision.decided_by
        added = effect.record(
            keys.gate_decided(gate.name, deal.revision),
            f"{gate.title} {verdict} by {who}",
            stage="rejected" if not decision.approved else approval_stage(gate.name),
            actor=decision.decided_by,
            comment=decision.comment,
            at=decision.decided_at,
        )
        if added:
            effect.waiting_on_nobody()
            if not decision.approved:
                deal.outcome = "rejected"
                deal.outcome_reason = f"{gate.title} rejected by {who}: {decision.comment}"


@effect_task("announce-rejection")
def announce_rejection(deal_id: str, gate: GatePlan) -> None:
    """Tell the sales rep and everyone who approved before that the deal was rejected."""
    with deal_effect(deal_id) as effect:
        deal = effect.deal
        if gate.revision != deal.revision:
            return  # the rep revised the rejected deal already: it was theirs to know
        rows = approvals(effect.session, deal_id)
        rejected = next(row for row in rows if row.gate == gate.name)
        approved_before = [row for row in rows if row.decision == "approved"]
        language = effect.matrix.language_of(deal.sales_rep_email, deal.team)
        title = _gate_title(effect.matrix, gate, language)
        effect.send(
            OutgoingEmail(
                key=keys.rejected_mail(deal_id, deal.revision),
                kind="rejection",
                deal_id=deal_id,
                to=[deal.sales_rep_email],
                cc=[row.decided_by or row.assignee_email for row in approved_before],
                subject=translate(
                    language,
                    "Deal rejected: %(title)s (%(deal_id)s) at %(gate)s",
                    title=deal.title,
                    deal_id=deal_id,
                    gate=title,
                ),
                language=language,
                template="rejection",
                context={
                    "deal": effect.intake,
                    "gate": gate.model_copy(update={"title": title}),
                    "rejection": rejected,
                },
            )
        )


def _gate_title(matrix: Matrix, gate: GatePlan, language: str) -> str:
    """The planned gate's title in ``language``, as the matrix now gives it (the planned
    title itself in English, or for a gate the matrix no longer has)."""
    if language == ENGLISH:
        return gate.title
    return next((g.title_in(language) for g in matrix.gates if g.name == gate.name), gate.title)
