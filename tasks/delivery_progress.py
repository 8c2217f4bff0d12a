"""Delivery progress, recorded by the sales rep while delivery runs (from the kickoff to
the customer's acceptance): a short report each delivery week, sent to the customer's
contact on request, and the change requests the customer makes, each with its decision.
A duty beside the deal's run: the run never waits for it; the sla-sweep follows the
weekly report up (tasks/progress_follow_up.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dealflow.infra.clock import utcnow
from dealflow.infra.rendering import translate
from dealflow.infra.words import Words
from models import keys
from models.deal import Contact, DealIntake
from models.delivery_weeks import week_at
from models.tables import Deal, DealOutcome, StageTransition
from tasks.deal_effect import DealEffect, deal_effect
from tasks.email_message import OutgoingEmail

MAX_NOTE = 2000
MAX_SUMMARY = 200
DECISIONS = ("approved", "rejected")


class ProgressError(ValueError):
    """Nothing was recorded (nor sent); the message says why: in the reader's language
    with ``said.in_language`` when it is Words (what a page may say), in English when it
    is text (what only the command says: its options)."""

    def __init__(self, said: Words | str) -> None:
        super().__init__(said)
        self.said = said


@dataclass(frozen=True)
class ProgressReported:
    """A weekly report as recorded now: its week, and to whom it was mailed, if anyone."""

    week: int
    sent_to: str | None


@dataclass(frozen=True)
class ChangeRequest:
    """A change request as recorded: its number on the deal and its decision."""

    number: int
    decision: str


def _utc(at: dt.datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def customer_contact(intake: DealIntake) -> Contact:
    """Whom the customer's progress reports go to: the first of its contacts (the one the
    rep works with), else its billing contact."""
    return (
        intake.customer.contacts[0] if intake.customer.contacts else intake.customer.billing_contact
    )


def delivery_started(session: Session, deal: Deal) -> dt.datetime:
    """When the delivery of ``deal`` was kicked off, if it runs still; ProgressError,
    saying why, when it does not (not kicked off yet, already accepted, or ended)."""
    entries = {
        t.key: t
        for t in session.scalars(
            select(StageTransition).where(
                StageTransition.deal_id == deal.id,
                StageTransition.key.in_([keys.KICKOFF, keys.ACCEPTED]),
            )
        )
    }
    accepted = entries.get(keys.ACCEPTED)
    if accepted is not None:
        raise ProgressError(
            Words(
                "the delivery of %(deal_id)s is over: the customer's acceptance was recorded "
                "at %(at)s",
                deal_id=deal.id,
                at=_utc(accepted.at),
            )
        )
    if deal.outcome in DealOutcome.FINAL:
        raise ProgressError(
            Words(
                "deal %(deal_id)s has ended (%(outcome)s); it has no delivery",
                deal_id=deal.id,
                outcome=deal.outcome,
            )
        )
    kickoff = entries.get(keys.KICKOFF)
    if kickoff is None:
        raise ProgressError(
            Words(
                "the delivery of %(deal_id)s is not kicked off yet (it is at %(stage)s)",
                deal_id=deal.id,
                stage=deal.stage,
            )
        )
    return kickoff.at


@dataclass(frozen=True)
class ProgressWeek:
    """The delivery week running, and its report if it is recorded."""

    week: int
    recorded: StageTransition | None


def _progress_week(effect: DealEffect, now: dt.datetime) -> ProgressWeek:
    every = effect.matrix.handoff.progress_every_days
    if every is None:
        raise ProgressError(Words("the matrix asks for no progress reports (progress_every_days)"))
    week = week_at(delivery_started(effect.session, effect.deal), now, every)
    recorded = effect.session.scalar(
        select(StageTransition).where(
            StageTransition.deal_id == effect.deal.id,
            StageTransition.key == keys.progress_report(week),
        )
    )
    return ProgressWeek(week, recorded)


def progress_week(deal_id: str, now: dt.datetime | None = None) -> ProgressWeek:
    """The delivery week of ``deal_id`` running at ``now``, and its report if recorded
    (nothing is changed); ProgressError outside delivery, DealNotFound for no such deal."""
    with deal_effect(deal_id) as effect:
        return _progress_week(effect, now or utcnow())


def _bounded(text: str, what: str, flag: str, limit: int) -> str:
    text = text.strip()
    if not text:
        raise ProgressError(f"give the {what} ({flag})")
    if len(text) > limit:
        raise ProgressError(f"the {what} is longer than {limit} characters")
    return text


def record_progress(
    deal_id: str,
    note: str,
    by: str | None = None,
    *,
    to_customer: bool = False,
    now: dt.datetime | None = None,
) -> ProgressReported:
    """Record the rep's progress report ``note`` for the delivery week running at
    ``now``, by ``by`` (default: the deal's sales rep); with ``to_customer``, mail it to
    the customer's contact in the customer's language (once: the mail is keyed by the
    report). ProgressError outside delivery, or when the week's report is recorded."""
    note = _bounded(note, "progress note", "--note", MAX_NOTE)
    now = now or utcnow()
    with deal_effect(deal_id, lock=True) as effect:
        deal, matrix = effect.deal, effect.matrix
        running = _progress_week(effect, now)
        week, earlier = running.week, running.recorded
        key = keys.progress_report(week)
        if earlier is not None:
            raise ProgressError(
                Words(
                    "the progress report for week %(week)s of %(deal_id)s was already "
                    "recorded by %(by)s at %(at)s",
                    week=week,
                    deal_id=deal_id,
                    by=earlier.actor,
                    at=_utc(earlier.at),
                )
            )
        contact = customer_contact(effect.intake) if to_customer else None
        sent_to = f"{contact.name} <{contact.email}>" if contact else None
        effect.record(
            key,
            f"Progress report for delivery week {week}"
            + (f", sent to {sent_to}" if sent_to else "")
            + f": {note}",
            actor=by or deal.sales_rep_email,
            comment=note,
            at=now,
        )
        if contact is not None:
            language = matrix.customer_language(effect.intake)
            words = {"title": deal.title, "week": week}
            effect.send(
                OutgoingEmail(
                    key=keys.deal_mail(deal_id, key),
                    kind="progress-report",
                    deal_id=deal_id,
                    to=[contact.email],
                    cc=[deal.sales_rep_email],
                    subject=translate(
                        language, "Progress report, week %(week)s: %(title)s", **words
                    ),
                    language=language,
                    template="progress_report",
                    context={"deal": effect.intake, "contact": contact, "week": week, "note": note},
                )
            )
    return ProgressReported(week, sent_to)


def record_change_request(
    deal_id: str,
    summary: str,
    decision: str,
    by: str | None = None,
    note: str = "",
    *,
    now: dt.datetime | None = None,
) -> ChangeRequest:
    """Record a change request the customer made during delivery and its ``decision``
    (approved or rejected), each its own timeline entry, numbered on the deal.
    ProgressError outside delivery or without a summary or a known decision."""
    summary = _bounded(summary, "change request's summary", "--summary", MAX_SUMMARY)
    if decision not in DECISIONS:
        raise ProgressError(f"the decision is {' or '.join(DECISIONS)}, not {decision!r}")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ProgressError(f"the note is longer than {MAX_NOTE} characters")
    with deal_effect(deal_id, lock=True) as effect:
        deal = effect.deal
        delivery_started(effect.session, deal)
        recorded = effect.session.scalar(
            select(func.count(StageTransition.id)).where(
                StageTransition.deal_id == deal_id,
                StageTransition.key.startswith(keys.CHANGE_REQUEST_PREFIX),
            )
        )
        number = (recorded or 0) + 1
        effect.record(
            keys.change_request(number),
            f"Change request {number} {decision}: {summary}" + (f" ({note})" if note else ""),
            actor=by or deal.sales_rep_email,
            comment=note,
            at=now,
        )
    return ChangeRequest(number, decision)
