"""Follow-ups on an approval gate past its time limit: the assignee's delegate when they
are away, then reminders, then escalation to the next person in the gate's chain, each
level once."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from dealflow.infra.db import session_scope
from dealflow.infra.links import LinkClaim
from dealflow.infra.records import (
    add_transition,
    get_approval,
    get_deal,
    intake_of,
    on_timeline,
    people_on_deal,
    wait_on,
)
from dealflow.infra.rendering import translate
from models import keys
from models.gates import approval_stage
from models.matrix import Gate, Matrix, MatrixError
from models.settings import Settings, get_settings
from models.tables import Approval, Deal
from tasks.approvals import approval_link, hand_to_delegate
from tasks.email_message import OutgoingEmail
from tasks.mailer import deliver


def open_gates() -> list[tuple[str, str]]:
    with session_scope() as session:
        rows = session.execute(
            select(Approval.deal_id, Approval.gate)
            .join(Deal, Deal.id == Approval.deal_id)
            .where(
                Approval.revision == Deal.revision,  # a revised deal's earlier gates are over
                Approval.decision.is_(None),
                Approval.requested_at.is_not(None),
                Deal.outcome.is_(None),
                Deal.flow_run_id.is_not(None),
            )
            .order_by(Approval.requested_at)
        ).all()
    return [(deal_id, gate) for deal_id, gate in rows]


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
        language = matrix.language_of(row.assignee_email, deal.team)
        mail = _delegated_request(deal, row, gate.title_in(language), absent, now, language)
    deliver(mail)
    return f"{deal_id}/{gate.name}: delegated to {row.assignee_email}"


class _Recipient(NamedTuple):
    """Who a follow-up goes to, what the timeline says of it, and since when the link in
    it is valid."""

    email: str
    name: str
    cc: list[str]
    link_from: dt.datetime
    event: str


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
        key = keys.gate_deadline(gate_name, level, holder, deal.revision)
        if on_timeline(session, deal_id, key):
            return None
        hours = f"{after.total_seconds() / 3600:g} business hours"
        if level == "escalation":
            recipient = _escalate(session, matrix, gate, deal, row, key, hours, now)
            if recipient is None:
                return f"{deal_id}/{gate_name}: cannot escalate"
        else:
            recipient = _reminded(gate, row, level, hours, asked)
        add_transition(
            session,
            deal,
            key=key,
            stage=approval_stage(gate_name),
            event=recipient.event,
            actor="dealflow",
            at=now,
        )
        language = matrix.language_of(recipient.email, deal.team)
        limit = f"{after.total_seconds() / 3600:g}"
        words = translate(language, "%(hours)s business hours", hours=limit)
        mail = _follow_up_mail(deal, row, gate, level, key, words, recipient, settings, language)
    deliver(mail)
    return f"{deal_id}/{gate_name}: {level} to {recipient.email}"


def _escalate(
    session: Session,
    matrix: Matrix,
    gate: Gate,
    deal: Deal,
    row: Approval,
    key: str,
    hours: str,
    now: dt.datetime,
) -> _Recipient | None:
    """Hand the gate to the next person of its chain who is not on the deal yet; None
    (and a note on the timeline) when the matrix has nobody."""
    assert gate.escalate_to is not None
    on_deal = people_on_deal(session, deal)
    try:
        person = matrix.first_for(gate.escalate_to, deal.team, excluding=on_deal)
    except MatrixError as exc:
        add_transition(
            session,
            deal,
            key=key,
            stage=approval_stage(gate.name),
            actor="dealflow",
            event=f"{gate.title} is {hours} overdue and cannot escalate: {exc}",
            at=now,
        )
        return None
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
    return _Recipient(person.email, person.name, [], now, event)


def _reminded(gate: Gate, row: Approval, level: str, hours: str, asked: dt.datetime) -> _Recipient:
    """The gate's current holder, reminded."""
    email, name = row.current_assignee
    event = f"{gate.title}: {level.replace('-', ' ')} sent to {name} after {hours}"
    return _Recipient(email, name, [], row.escalated_at or asked, event)


def _follow_up_mail(
    deal: Deal,
    row: Approval,
    gate: Gate,
    level: str,
    key: str,
    hours: str,
    recipient: _Recipient,
    settings: Settings,
    language: str,
) -> OutgoingEmail:
    """The reminder or escalation email, with an approval link for its recipient, in
    their ``language``."""
    assert deal.flow_run_id is not None
    expires = recipient.link_from + dt.timedelta(hours=settings.link_ttl_hours)
    link = approval_link(
        LinkClaim(
            deal_id=deal.id,
            gate=gate.name,
            approver=recipient.email,
            run_id=deal.flow_run_id,
            expires_at=int(expires.timestamp()),
        )
    )
    return OutgoingEmail(
        key=keys.deal_mail(deal.id, key),
        kind=level if level == "escalation" else "reminder",
        deal_id=deal.id,
        to=[recipient.email],
        cc=recipient.cc,
        subject=(
            translate(
                language,
                "Escalated to you: %(title)s (%(deal_id)s) - %(gate)s",
                title=deal.title,
                deal_id=deal.id,
                gate=gate.title_in(language),
            )
            if level == "escalation"
            else translate(
                language,
                "Reminder: %(title)s (%(deal_id)s) waits for your %(gate)s",
                title=deal.title,
                deal_id=deal.id,
                gate=gate.title_in(language).lower(),
            )
        ),
        language=language,
        template="escalation" if level == "escalation" else "reminder",
        context={
            "deal": intake_of(deal),
            "gate_title": gate.title_in(language),
            "recipient_name": recipient.name,
            "original": row.assignee_name,
            "requested_at": row.requested_at,
            "overdue_by": hours,
            "link": link,
            "expires": expires,
        },
    )


def _delegated_request(
    deal: Deal, row: Approval, gate_title: str, absent: str, now: dt.datetime, language: str
) -> OutgoingEmail:
    assert deal.flow_run_id is not None
    expires = now + dt.timedelta(hours=get_settings().link_ttl_hours)
    claim = LinkClaim(
        deal_id=deal.id,
        gate=row.gate,
        approver=row.assignee_email,
        run_id=deal.flow_run_id,
        expires_at=int(expires.timestamp()),
    )
    return OutgoingEmail(
        key=keys.delegation_mail(deal.id, row.gate, row.assignee_email, deal.revision),
        kind="approval-request",
        deal_id=deal.id,
        to=[row.assignee_email],
        subject=translate(
            language,
            "Approval needed: %(title)s (%(deal_id)s) - %(gate)s, for %(absent)s",
            title=deal.title,
            deal_id=deal.id,
            gate=gate_title,
            absent=absent,
        ),
        language=language,
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
