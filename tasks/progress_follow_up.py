"""Follow-ups on the rep's weekly progress report while delivery runs: once a delivery
week has ended without one, a reminder to the rep; once two weeks in a row have, word
to the role the matrix escalates it to (the rep in copy). Each once per week, the
highest due only. A duty beside the deal's run: nothing waits for it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import exists, select
from sqlalchemy.orm import aliased

from dealflow.infra.db import session_scope
from dealflow.infra.links import Purpose
from dealflow.infra.records import add_transition, get_deal, intake_of, on_timeline
from dealflow.infra.rendering import translate
from models import keys
from models.delivery_weeks import week_end, weeks_ended
from models.matrix import Matrix
from models.tables import Deal, DealOutcome, StageTransition, open_deal
from tasks.duty_links import duty_link
from tasks.email_message import OutgoingEmail
from tasks.mailer import deliver


def open_deliveries() -> list[str]:
    """Deals kicked off and not accepted yet, nor ended: their delivery runs."""
    accepted = aliased(StageTransition)
    with session_scope() as session:
        return list(
            session.scalars(
                select(StageTransition.deal_id)
                .join(Deal, Deal.id == StageTransition.deal_id)
                .where(
                    StageTransition.key == keys.KICKOFF,
                    open_deal(),
                    ~exists().where(
                        accepted.deal_id == StageTransition.deal_id,
                        accepted.key == keys.ACCEPTED,
                    ),
                )
                .order_by(StageTransition.at)
            )
        )


def follow_up_progress(matrix: Matrix, deal_id: str, now: dt.datetime) -> str | None:
    """Remind the rep when the last delivery week that ended at ``now`` has no progress
    report; when the week before it has none either, tell whoever holds the matrix's
    ``progress_escalate_to`` role instead (the rep in copy). What was sent, or None."""
    every = matrix.handoff.progress_every_days
    if every is None:
        return None
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        kickoff = session.scalar(
            select(StageTransition.at).where(
                StageTransition.deal_id == deal_id, StageTransition.key == keys.KICKOFF
            )
        )
        if (
            kickoff is None
            or deal.outcome in DealOutcome.FINAL
            or on_timeline(session, deal_id, keys.ACCEPTED)
        ):
            return None
        week = weeks_ended(kickoff, now, every)
        if week < 1 or on_timeline(session, deal_id, keys.progress_report(week)):
            return None
        escalate_to = matrix.handoff.progress_escalate_to
        overdue = (
            escalate_to is not None
            and week >= 2
            and not on_timeline(session, deal_id, keys.progress_report(week - 1))
        )
        level = "escalation" if overdue else "reminder"
        key = keys.progress_deadline(week, level)
        if on_timeline(session, deal_id, key):
            return None
        ended = week_end(kickoff, week, every)
        rep = f"{deal.sales_rep_name} <{deal.sales_rep_email}>"
        if overdue:
            assert escalate_to is not None
            told = matrix.people_for(escalate_to, deal.team)
            to, cc = [p.email for p in told], [deal.sales_rep_email]
            event = (
                f"No progress report for delivery weeks {week - 1} and {week} (ended "
                f"{ended:%Y-%m-%d %H:%M} UTC): told {', '.join(p.name for p in told)}"
            )
        else:
            to, cc = [deal.sales_rep_email], []
            event = (
                f"No progress report for delivery week {week} (ended "
                f"{ended:%Y-%m-%d %H:%M} UTC): reminded {rep}"
            )
        add_transition(
            session, deal, key=key, stage=deal.stage, event=event, actor="dealflow", at=now
        )
        language = matrix.language_of(to[0], deal.team)
        words = {"title": deal.title, "deal_id": deal.id, "week": week}
        mail = OutgoingEmail(
            key=keys.deal_mail(deal_id, key),
            kind=f"progress-{level}",
            deal_id=deal_id,
            to=to,
            cc=[c for c in cc if c not in to],
            subject=(
                translate(language, "Progress reports missing: %(title)s (%(deal_id)s)", **words)
                if overdue
                else translate(
                    language,
                    "Progress report for week %(week)s due: %(title)s (%(deal_id)s)",
                    **words,
                )
            ),
            language=language,
            template="progress_follow_up",
            context={
                "deal": intake_of(deal),
                "week": week,
                "ended": ended,
                "overdue": overdue,
                "link": duty_link(Purpose.PROGRESS, deal, now),
            },
        )
    deliver(mail)
    return f"{deal_id}/{key} to {', '.join(to)}"
