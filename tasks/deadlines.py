"""Follow-ups on work past its time limit, once per level: approval gates (reminders,
then escalation) and the stages before the contract (a reminder, then the accountable)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from functools import partial
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from dealflow.infra.db import session_scope
from dealflow.infra.links import ApprovalClaim
from dealflow.infra.records import (
    add_transition,
    get_approval,
    get_deal,
    intake_of,
    people_on_deal,
    wait_on,
)
from models import keys
from models.deal import EARLY_STAGES
from models.gates import approval_stage
from models.matrix import Gate, Matrix, MatrixError, load_matrix
from models.settings import get_settings
from models.tables import Approval, Deal, StageTransition
from tasks.approvals import approval_link, hand_to_delegate
from tasks.effect import effect_task, is_transient
from tasks.mailer import OutgoingEmail, deliver, resend_failed


def open_gates() -> list[tuple[str, str]]:
    with session_scope() as session:
        rows = session.execute(
            select(Approval.deal_id, Approval.gate)
            .join(Deal, Deal.id == Approval.deal_id)
            .where(
                Approval.decision.is_(None),
                Approval.requested_at.is_not(None),
                Deal.outcome.is_(None),
                Deal.flow_run_id.is_not(None),
            )
            .order_by(Approval.requested_at)
        ).all()
    return [(deal_id, gate) for deal_id, gate in rows]


def _done(session: Session, deal_id: str, key: str) -> bool:
    return (
        session.scalar(
            select(StageTransition.id).where(
                StageTransition.deal_id == deal_id, StageTransition.key == key
            )
        )
        is not None
    )


def _open_gate(
    session: Session, deal_id: str, gate_name: str
) -> tuple[Deal, Approval, dt.datetime] | None:
    """The deal (locked), its gate and when the gate was asked, if it still waits."""
    deal = get_deal(session, deal_id, for_update=True)
    row = get_approval(session, deal_id, gate_name)
    if row is None or row.decision is not None or row.requested_at is None:
        return None
    return deal, row, row.requested_at


def delegate_if_away(matrix: Matrix, deal_id: str, gate: Gate, now: dt.datetime) -> str | None:
    """Move a waiting gate to whoever acts for its absent assignee; what was done."""
    with session_scope() as session:
        found = _open_gate(session, deal_id, gate.name)
        if found is None:
            return None
        deal, row, _ = found
        absent = hand_to_delegate(session, matrix, deal, row, now)
        if absent is None:
            return None
        # The delegate's time limit starts when the gate reaches them.
        row.requested_at = deal.waiting_since = now
        mail = _delegated_request(deal, row, gate.title, absent, now)
    deliver(mail)
    return f"{deal_id}/{gate.name}: delegated to {row.assignee_email}"


def follow_up(matrix: Matrix, deal_id: str, gate_name: str, now: dt.datetime) -> str | None:
    """Send the highest follow-up now due for one gate, unless it was sent; what was done.

    A gate whose assignee is away goes to their delegate first. Levels missed while no
    sweep ran are not sent in a burst: only the highest due one.
    """
    settings = get_settings()
    gate = next((g for g in matrix.gates if g.name == gate_name), None)
    if gate is None:
        return None  # a gate the current matrix no longer has: no limits to apply
    delegated = delegate_if_away(matrix, deal_id, gate, now)
    if delegated:
        return delegated
    with session_scope() as session:
        found = _open_gate(session, deal_id, gate_name)
        if found is None:
            return None
        deal, row, asked = found
        elapsed = matrix.calendar(deal.team).working_time_between(asked, now)
        due = [(level, after) for level, after in gate.deadlines() if elapsed >= after]
        if not due:
            return None
        level, after = due[-1]
        # Reminders are per person holding the gate (a delegate gets their own);
        # escalation happens once per gate.
        holder = None if level == "escalation" else row.current_assignee[0]
        key = keys.gate_deadline(gate_name, level, holder)
        if _done(session, deal_id, key):
            return None
        hours = f"{after.total_seconds() / 3600:g} business hours"
        if level == "escalation":
            assert gate.escalate_to is not None
            on_deal = people_on_deal(session, deal)
            try:
                person = matrix.first_for(gate.escalate_to, deal.team, excluding=on_deal)
            except MatrixError as exc:
                add_transition(
                    session,
                    deal,
                    key=key,
                    stage=approval_stage(gate_name),
                    actor="dealflow",
                    event=f"{gate.title} is {hours} overdue and cannot escalate: {exc}",
                    at=now,
                )
                return f"{deal_id}/{gate_name}: cannot escalate"
            row.escalated_to, row.escalated_to_name, row.escalated_at = (
                person.email,
                person.name,
                now,
            )
            wait_on(deal, person.email, person.name, deal.waiting_since)
            event = (
                f"{gate.title} escalated to {person.name} <{person.email}> after {hours} "
                f"without a decision from {row.assignee_name}"
            )
            # The link names the escalated person: it goes to them alone.
            recipient, recipient_name = person.email, person.name
            cc: list[str] = []
            link_from = now
        else:
            recipient, recipient_name = row.current_assignee
            event = (
                f"{gate.title}: {level.replace('-', ' ')} sent to {recipient_name} after {hours}"
            )
            cc, link_from = [], row.escalated_at or asked
        add_transition(
            session,
            deal,
            key=key,
            stage=approval_stage(gate_name),
            event=event,
            actor="dealflow",
            at=now,
        )
        assert deal.flow_run_id is not None
        expires = link_from + dt.timedelta(hours=settings.link_ttl_hours)
        link = approval_link(
            ApprovalClaim(
                deal_id=deal_id,
                gate=gate_name,
                approver=recipient,
                run_id=deal.flow_run_id,
                expires_at=int(expires.timestamp()),
            )
        )
        mail = OutgoingEmail(
            key=keys.deal_mail(deal_id, key),
            kind=level if level == "escalation" else "reminder",
            deal_id=deal_id,
            to=[recipient],
            cc=cc,
            subject=(
                f"Escalated to you: {deal.title} ({deal_id}) - {gate.title}"
                if level == "escalation"
                else f"Reminder: {deal.title} ({deal_id}) waits for your {gate.title.lower()}"
            ),
            template="escalation" if level == "escalation" else "reminder",
            context={
                "deal": intake_of(deal),
                "gate_title": gate.title,
                "recipient_name": recipient_name,
                "original": row.assignee_name,
                "requested_at": row.requested_at,
                "overdue_by": hours,
                "link": link,
                "expires": expires,
            },
        )
    deliver(mail)
    return f"{deal_id}/{gate_name}: {level} to {recipient}"


def _delegated_request(
    deal: Deal, row: Approval, gate_title: str, absent: str, now: dt.datetime
) -> OutgoingEmail:
    assert deal.flow_run_id is not None
    expires = now + dt.timedelta(hours=get_settings().link_ttl_hours)
    claim = ApprovalClaim(
        deal_id=deal.id,
        gate=row.gate,
        approver=row.assignee_email,
        run_id=deal.flow_run_id,
        expires_at=int(expires.timestamp()),
    )
    return OutgoingEmail(
        key=keys.delegation_mail(deal.id, row.gate, row.assignee_email),
        kind="approval-request",
        deal_id=deal.id,
        to=[row.assignee_email],
        subject=f"Approval needed: {deal.title} ({deal.id}) - {gate_title}, for {absent}",
        template="approval_request",
        context={
            "deal": intake_of(deal),
            "gate": {"assignee_name": row.assignee_name, "title": gate_title},
            "link": approval_link(claim),
            "expires": expires,
            "earlier": [],
            "on_behalf_of": absent,
        },
    )


@effect_task("follow-up-overdue-gates")
def follow_up_overdue_gates(now: dt.datetime) -> list[FollowUp]:
    """Remind or escalate every open gate past its limit at ``now``; what was sent."""
    matrix = load_matrix(get_settings().matrix_path)
    return _each(
        (deal_id, partial(follow_up, matrix, deal_id, gate, now)) for deal_id, gate in open_gates()
    )


class FollowUp(NamedTuple):
    """What a sweep did about one deal."""

    deal_id: str
    action: str

    def __str__(self) -> str:
        return self.action


def _each(work: Iterable[tuple[str, Callable[[], str | None]]]) -> list[FollowUp]:
    """Run each deal's follow-up; one whose email could not go out does not stop the rest
    (its effect is recorded and the outbox keeps the email for the next sweep)."""
    done = []
    for deal_id, act in work:
        try:
            action = act()
        except Exception as exc:
            if not is_transient(exc):
                raise
            action = f"{deal_id}: email held back ({type(exc).__name__}), resent next sweep"
        if action:
            done.append(FollowUp(deal_id, action))
    return done


@effect_task("resend-failed-mail")
def resend_failed_mail() -> list[str]:
    """Send again the emails whose send failed earlier; their keys."""
    return resend_failed()


def open_stages() -> list[str]:
    """Deals waiting on their sales rep at a stage before the contract."""
    with session_scope() as session:
        return list(
            session.scalars(
                select(Deal.id)
                .where(
                    Deal.stage.in_([stage.value for stage in EARLY_STAGES]),
                    Deal.outcome.is_(None),
                    Deal.waiting_since.is_not(None),
                    Deal.flow_run_id.is_not(None),
                )
                .order_by(Deal.waiting_since)
            )
        )


def follow_up_stage(matrix: Matrix, deal_id: str, now: dt.datetime) -> str | None:
    """Remind the rep when a stage passes its limit; at twice the limit, tell whoever is
    accountable for it. Each once; the highest due only."""
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        rule = next((s for s in matrix.stages if s.name == deal.stage), None)
        if (
            rule is None
            or rule.limit_from != "opened"
            or rule.limit_business_hours is None
            or deal.waiting_since is None
            or deal.outcome is not None
        ):
            return None
        limit = dt.timedelta(hours=rule.limit_business_hours)
        elapsed = matrix.calendar(deal.team).working_time_between(deal.waiting_since, now)
        due = [
            level
            for level, after in (("reminder", limit), ("escalation", 2 * limit))
            if elapsed >= after
        ]
        if not due:
            return None
        level = due[-1]
        key = keys.stage_deadline(deal.stage, level)
        if _done(session, deal_id, key):
            return None
        hours = f"{elapsed.total_seconds() / 3600:g} business hours"
        if level == "escalation":
            accountable = [
                person
                for role in rule.accountable
                if role != "sales_rep"
                for person in matrix.people_for(role, deal.team)
            ]
            to, cc = (
                [p.email for p in accountable] or [deal.sales_rep_email],
                [deal.sales_rep_email],
            )
            event = f"{rule.title} is {hours} old, twice its limit: told {', '.join(p.name for p in accountable)}"
        else:
            to, cc = [deal.sales_rep_email], []
            event = f"{rule.title} passed its limit ({rule.limit}): reminder sent to {deal.sales_rep_name}"
        add_transition(
            session, deal, key=key, stage=deal.stage, event=event, actor="dealflow", at=now
        )
        mail = OutgoingEmail(
            key=keys.deal_mail(deal_id, key),
            kind=f"stage-{level}",
            deal_id=deal_id,
            to=to,
            cc=[c for c in cc if c not in to],
            subject=f"{'Behind plan' if level == 'escalation' else 'Reminder'}: {rule.title} of {deal.title} ({deal_id})",
            template="stage_overdue",
            context={
                "deal": intake_of(deal),
                "stage_title": rule.title,
                "limit": rule.limit,
                "since": deal.waiting_since,
                "elapsed": hours,
                "to_manager": level == "escalation",
            },
        )
    deliver(mail)
    return f"{deal_id}/{key.split('/', 1)[1]} to {', '.join(to)}"


@effect_task("follow-up-overdue-stages")
def follow_up_overdue_stages(now: dt.datetime) -> list[FollowUp]:
    """Remind or escalate every stage before the contract past its limit at ``now``."""
    matrix = load_matrix(get_settings().matrix_path)
    return _each(
        (deal_id, partial(follow_up_stage, matrix, deal_id, now)) for deal_id in open_stages()
    )
