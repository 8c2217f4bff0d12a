"""Follow-ups on archiving a signed contract: on the day it is due, a reminder to
administration; once it is overdue, word to the role the matrix escalates it to. Each
once per deal, the highest due only. A duty beside the deal's run: nothing waits for it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import exists, select
from sqlalchemy.orm import aliased

from dealflow.infra.db import session_scope
from dealflow.infra.records import add_transition, get_deal, intake_of, on_timeline
from dealflow.infra.rendering import translate
from models import keys
from models.matrix import Matrix
from models.tables import StageTransition
from tasks.email_message import OutgoingEmail
from tasks.mailer import deliver
from tasks.signing import archive_due


def open_archives() -> list[str]:
    """Deals whose signed contract administration was asked to archive, not yet archived."""
    archived = aliased(StageTransition)
    with session_scope() as session:
        return list(
            session.scalars(
                select(StageTransition.deal_id)
                .where(
                    StageTransition.key == keys.ARCHIVE_REQUESTED,
                    ~exists().where(
                        archived.deal_id == StageTransition.deal_id,
                        archived.key == keys.ARCHIVED,
                    ),
                )
                .order_by(StageTransition.at)
            )
        )


def follow_up_archive(matrix: Matrix, deal_id: str, now: dt.datetime) -> str | None:
    """Remind administration on the day the archiving is due; once it is overdue, tell
    whoever holds the matrix's ``archive_escalate_to`` role (administration in copy).
    What was sent, or None."""
    role = matrix.handoff.archive_role
    if role is None:
        return None
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        requested = session.scalar(
            select(StageTransition.at).where(
                StageTransition.deal_id == deal_id,
                StageTransition.key == keys.ARCHIVE_REQUESTED,
            )
        )
        if requested is None or on_timeline(session, deal_id, keys.ARCHIVED):
            return None
        due = archive_due(matrix, deal, requested)
        today = now.astimezone(matrix.calendar(deal.team).zone).date()
        if today < due:
            return None
        holders = matrix.people_for(role, deal.team)
        escalate_to = matrix.handoff.archive_escalate_to
        overdue = today > due and escalate_to is not None
        level = "escalation" if overdue else "reminder"
        key = keys.archive_deadline(level)
        if on_timeline(session, deal_id, key):
            return None
        names = ", ".join(p.name for p in holders)
        if overdue:
            assert escalate_to is not None
            told = matrix.people_for(escalate_to, deal.team)
            to, cc = [p.email for p in told], [p.email for p in holders]
            event = (
                f"Archiving of the signed contract was due {due.isoformat()} and is not "
                f"recorded: told {', '.join(p.name for p in told)}"
            )
        else:
            to, cc = [p.email for p in holders], []
            event = f"Archiving of the signed contract is due {due.isoformat()}: reminded {names}"
        add_transition(
            session, deal, key=key, stage=deal.stage, event=event, actor="dealflow", at=now
        )
        language = matrix.language_of(to[0], deal.team)
        words = {"title": deal.title, "deal_id": deal.id}
        mail = OutgoingEmail(
            key=keys.deal_mail(deal_id, key),
            kind=f"archive-{level}",
            deal_id=deal_id,
            to=to,
            cc=[c for c in cc if c not in to],
            subject=(
                translate(language, "Archiving overdue: %(title)s (%(deal_id)s)", **words)
                if overdue
                else translate(
                    language, "Archive the signed contract today: %(title)s (%(deal_id)s)", **words
                )
            ),
            language=language,
            template="archive_follow_up",
            context={"deal": intake_of(deal), "due": due, "overdue": overdue, "holders": names},
        )
    deliver(mail)
    return f"{deal_id}/{key} to {', '.join(to)}"
