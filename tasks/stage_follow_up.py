"""Follow-ups on a stage before the contract past its time limit: a reminder to the sales
rep, then, at twice the limit, word to whoever is accountable for the stage."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.infra.records import add_transition, get_deal, intake_of, on_timeline
from dealflow.infra.rendering import translate
from models import keys
from models.deal import EARLY_STAGES
from models.matrix import Matrix, Stage
from models.tables import Deal
from tasks.email_message import OutgoingEmail
from tasks.mailer import deliver


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


class _Told(NamedTuple):
    to: list[str]
    cc: list[str]
    event: str  # for the timeline


def follow_up_stage(matrix: Matrix, deal_id: str, now: dt.datetime) -> str | None:
    """Remind the rep when a stage passes its limit; at twice the limit, tell whoever is
    accountable for it. Each once; the highest due only."""
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        found = _limit(matrix, deal)
        if found is None:
            return None
        rule, limit, since = found
        elapsed = matrix.calendar(deal.team).working_time_between(since, now)
        due = [
            level
            for level, after in (("reminder", limit), ("escalation", 2 * limit))
            if elapsed >= after
        ]
        if not due:
            return None
        level = due[-1]
        key = keys.stage_deadline(deal.stage, level)
        if on_timeline(session, deal_id, key):
            return None
        hours = f"{elapsed.total_seconds() / 3600:g} business hours"
        told = (
            _accountable(matrix, rule, deal, hours) if level == "escalation" else _rep(rule, deal)
        )
        add_transition(
            session, deal, key=key, stage=deal.stage, event=told.event, actor="dealflow", at=now
        )
        # In the language of its (first) reader.
        language = matrix.language_of(told.to[0], deal.team)
        worked = f"{elapsed.total_seconds() / 3600:g}"
        worked = translate(language, "%(hours)s business hours", hours=worked)
        mail = _stage_mail(deal, rule, level, key, told, worked, language)
    deliver(mail)
    return f"{deal_id}/{key.split('/', 1)[1]} to {', '.join(told.to)}"


def _limit(matrix: Matrix, deal: Deal) -> tuple[Stage, dt.timedelta, dt.datetime] | None:
    """The stage the open deal waits at, its limit and since when it waits there, if the
    limit counts from the stage opening."""
    rule = next((s for s in matrix.stages if s.name == deal.stage), None)
    if (
        rule is None
        or rule.limit_from != "opened"
        or rule.limit_business_hours is None
        or deal.waiting_since is None
        or deal.outcome is not None
    ):
        return None
    return rule, dt.timedelta(hours=rule.limit_business_hours), deal.waiting_since


def _accountable(matrix: Matrix, rule: Stage, deal: Deal, hours: str) -> _Told:
    """Whoever is accountable for the stage in the deal's team (the rep if nobody), the
    rep in copy."""
    accountable = [
        person
        for role in rule.accountable
        if role != "sales_rep"
        for person in matrix.people_for(role, deal.team)
    ]
    return _Told(
        [p.email for p in accountable] or [deal.sales_rep_email],
        [deal.sales_rep_email],
        f"{rule.title} is {hours} old, twice its limit: told {', '.join(p.name for p in accountable)}",
    )


def _rep(rule: Stage, deal: Deal) -> _Told:
    return _Told(
        [deal.sales_rep_email],
        [],
        f"{rule.title} passed its limit ({rule.limit}): reminder sent to {deal.sales_rep_name}",
    )


def _stage_mail(
    deal: Deal, rule: Stage, level: str, key: str, told: _Told, hours: str, language: str
) -> OutgoingEmail:
    words = {"stage": rule.title_in(language), "title": deal.title, "deal_id": deal.id}
    return OutgoingEmail(
        key=keys.deal_mail(deal.id, key),
        kind=f"stage-{level}",
        deal_id=deal.id,
        to=told.to,
        cc=[c for c in told.cc if c not in told.to],
        subject=(
            translate(language, "Behind plan: %(stage)s of %(title)s (%(deal_id)s)", **words)
            if level == "escalation"
            else translate(language, "Reminder: %(stage)s of %(title)s (%(deal_id)s)", **words)
        ),
        language=language,
        template="stage_overdue",
        context={
            "deal": intake_of(deal),
            "stage_title": rule.title_in(language),
            "limit": rule.limit,
            "since": deal.waiting_since,
            "elapsed": hours,
            "to_manager": level == "escalation",
        },
    )
