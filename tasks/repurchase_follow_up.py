"""The repurchase follow-up: a set number of calendar days after a deal is paid, its
sales rep is asked once to have a repurchase conversation with the customer and record
it; if it is still not recorded some days later, they are reminded once. A duty beside
the deal's run (which has ended, Paid): the sla-sweep asks and reminds, nothing waits."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import aliased

from dealflow.infra.db import session_scope
from dealflow.infra.links import Purpose
from dealflow.infra.records import add_transition, get_deal, intake_of
from dealflow.infra.rendering import translate
from models import keys
from models.matrix import Matrix
from models.tables import StageTransition
from tasks.duty_links import duty_link
from tasks.email_message import OutgoingEmail
from tasks.mailer import deliver


def open_repurchases(now: dt.datetime, after_days: int) -> list[str]:
    """Paid deals the sweep may have to ask or remind at ``now``, oldest paid first: those
    already asked and neither reminded nor recorded, and those paid about ``after_days``
    to twice that long ago and not recorded. (A day's margin on each side: the exact
    moment is the team's, which ``follow_up_repurchase`` checks.)"""
    later = aliased(StageTransition)
    margin = dt.timedelta(days=1)
    due = now - dt.timedelta(days=after_days) + margin
    too_late = now - dt.timedelta(days=2 * after_days) - margin

    def has(*wanted: str) -> ColumnElement[bool]:
        return exists().where(later.deal_id == StageTransition.deal_id, later.key.in_(wanted))

    with session_scope() as session:
        return list(
            session.scalars(
                select(StageTransition.deal_id)
                .where(
                    StageTransition.key == keys.CLOSED,
                    ~has(keys.REPURCHASE_RECORDED, keys.REPURCHASE_REMINDER),
                    or_(
                        has(keys.REPURCHASE_REQUESTED),
                        and_(StageTransition.at <= due, StageTransition.at > too_late),
                    ),
                )
                .order_by(StageTransition.at)
            )
        )


def follow_up_repurchase(matrix: Matrix, deal_id: str, now: dt.datetime) -> str | None:
    """Ask the deal's sales rep for the repurchase conversation once ``now`` is the
    matrix's ``repurchase_after_days`` after it was paid; remind them once
    ``repurchase_remind_days`` after that if it is still not recorded. What was sent, or
    None (not due yet, already done, or the matrix asks for no repurchase follow-up)."""
    after_days = matrix.handoff.repurchase_after_days
    if after_days is None:
        return None
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        done = {
            t.key: t.at
            for t in session.scalars(
                select(StageTransition).where(
                    StageTransition.deal_id == deal_id,
                    StageTransition.key.in_(
                        [
                            keys.CLOSED,
                            keys.REPURCHASE_REQUESTED,
                            keys.REPURCHASE_REMINDER,
                            keys.REPURCHASE_RECORDED,
                        ]
                    ),
                )
            )
        }
        paid_at = done.get(keys.CLOSED)
        if paid_at is None or keys.REPURCHASE_RECORDED in done:
            return None
        # Calendar days on the team's clock: 10:00 there stays 10:00 across a change of
        # summer time.
        zone = matrix.calendar(deal.team).zone
        asked_at = done.get(keys.REPURCHASE_REQUESTED)
        if asked_at is None:
            if now < paid_at.astimezone(zone) + dt.timedelta(days=after_days):
                return None
            if now >= paid_at.astimezone(zone) + dt.timedelta(days=2 * after_days):
                # Paid long before: before this duty existed (the first sweep after an
                # upgrade) or while no sweep ran. The moment for the conversation passed.
                return None
            key, reminder = keys.REPURCHASE_REQUESTED, False
        else:
            remind_days = matrix.handoff.repurchase_remind_days
            if keys.REPURCHASE_REMINDER in done:
                return None
            if now < asked_at.astimezone(zone) + dt.timedelta(days=remind_days):
                return None
            key, reminder = keys.REPURCHASE_REMINDER, True
        rep_email, rep_name = deal.sales_rep_email, deal.sales_rep_name
        paid = paid_at.astimezone(zone).date()
        if reminder:
            assert asked_at is not None
            event = (
                f"Repurchase conversation asked for {asked_at.astimezone(zone).date()} "
                f"and not recorded: reminded {rep_name}"
            )
        else:
            event = (
                f"Paid {paid.isoformat()}: asked {rep_name} for a repurchase conversation "
                "with the customer"
            )
        add_transition(
            session, deal, key=key, stage=deal.stage, event=event, actor="dealflow", at=now
        )
        language = matrix.language_of(rep_email, deal.team)
        words = {"title": deal.title, "deal_id": deal.id}
        mail = OutgoingEmail(
            key=keys.deal_mail(deal_id, key),
            kind=f"repurchase-{'reminder' if reminder else 'request'}",
            deal_id=deal_id,
            to=[rep_email],
            cc=[],
            subject=(
                translate(
                    language, "Reminder: repurchase conversation, %(title)s (%(deal_id)s)", **words
                )
                if reminder
                else translate(
                    language, "Repurchase conversation: %(title)s (%(deal_id)s)", **words
                )
            ),
            language=language,
            template="repurchase_follow_up",
            context={
                "deal": intake_of(deal),
                "paid": paid,
                "reminder": reminder,
                "link": duty_link(Purpose.REPURCHASE, deal, now),
            },
        )
    deliver(mail)
    return f"{deal_id}/{key} to {rep_email}"
