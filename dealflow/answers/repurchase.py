"""Recording the sales rep's repurchase conversation with a paid deal's customer: a duty
beside the deal's run (which has ended, Paid), asked for and followed up by the
sla-sweep until it is recorded. Recording it closes the duty; nothing else waits on it."""

from __future__ import annotations

from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.infra.records import Recorded, record_once
from dealflow.infra.words import Words
from models import keys
from models.tables import Deal, StageTransition

MAX_NOTE = 1000


class RepurchaseError(ValueError):
    """The conversation cannot be recorded now; nothing was changed. The message says
    why: in the reader's language with ``said.in_language`` when it is Words, in English
    when it is text (what only the command says: its options)."""

    def __init__(self, said: Words | str) -> None:
        super().__init__(said)
        self.said = said


def record_repurchase(deal_id: str, note: str, by: str | None = None) -> Recorded:
    """Record once the rep's repurchase conversation about ``deal_id``, with ``note``
    (the record's comment). RepurchaseError before the deal is paid, or without a note
    (or one too long, so the timeline stays readable); DealNotFound for no such deal. A
    second record changes nothing and says who recorded it, and when. ``by`` defaults to
    the deal's sales rep, whose conversation it is."""
    note = note.strip()
    if not note:
        raise RepurchaseError("say how the conversation went (--note)")
    if len(note) > MAX_NOTE:
        raise RepurchaseError(f"the note is longer than {MAX_NOTE} characters")

    def not_paid(deal: Deal) -> RepurchaseError:
        return RepurchaseError(
            Words(
                "%(deal_id)s is not paid yet (it is at %(stage)s); a repurchase "
                "conversation is recorded once the deal is paid",
                deal_id=deal_id,
                stage=deal.stage,
            )
        )

    return record_once(
        deal_id,
        keys.REPURCHASE_RECORDED,
        after=keys.CLOSED,
        refuse=not_paid,
        event="Repurchase conversation with the customer recorded",
        comment=note,
        by=lambda deal: by or deal.sales_rep_email,
    )


def repurchase_entry(deal_id: str) -> StageTransition | None:
    """The recorded repurchase conversation of ``deal_id``, if there is one."""
    with session_scope() as session:
        return session.scalar(
            select(StageTransition).where(
                StageTransition.deal_id == deal_id,
                StageTransition.key == keys.REPURCHASE_RECORDED,
            )
        )


def already_recorded(deal_id: str, done: Recorded) -> Words:
    return Words(
        "The repurchase conversation of %(deal_id)s was already recorded by %(by)s at "
        "%(at)s; nothing was changed.",
        deal_id=deal_id,
        by=done.by,
        at=done.when,
    )
