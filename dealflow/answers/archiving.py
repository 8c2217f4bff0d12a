"""Recording that administration archived the signed contract: a duty beside the deal's
run (nothing waits for it), followed up by the sla-sweep until it is recorded."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.infra.records import add_transition, get_deal
from models import keys
from models.tables import StageTransition

MAX_REFERENCE = 200


class ArchiveError(ValueError):
    """The archiving cannot be recorded now; nothing was changed. The message says why."""


@dataclass(frozen=True)
class Archived:
    """The archiving as recorded: now (``new``) or before, by whom and when."""

    new: bool
    by: str
    at: str
    reference: str


def archive_contract(deal_id: str, reference: str, by: str) -> Archived:
    """Record once that the signed contract of ``deal_id`` is archived under
    ``reference``. ArchiveError before the contract is signed, or without a reference;
    DealNotFound for no such deal."""
    reference = reference.strip()
    if not reference:
        raise ArchiveError("give the archive reference (--reference)")
    if len(reference) > MAX_REFERENCE:
        raise ArchiveError(f"the archive reference is longer than {MAX_REFERENCE} characters")
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        entries = {
            t.key: t
            for t in session.scalars(
                select(StageTransition).where(
                    StageTransition.deal_id == deal_id,
                    StageTransition.key.in_([keys.SIGNED, keys.ARCHIVED]),
                )
            )
        }
        done = entries.get(keys.ARCHIVED)
        if done is not None:
            return Archived(False, done.actor, f"{done.at:%Y-%m-%d %H:%M} UTC", done.comment)
        if keys.SIGNED not in entries:
            raise ArchiveError(
                f"the signed contract of {deal_id} is not recorded yet (it is at {deal.stage})"
            )
        add_transition(
            session,
            deal,
            key=keys.ARCHIVED,
            stage=deal.stage,
            event=f"Signed contract archived with administration, reference {reference}",
            actor=by,
            comment=reference,
        )
        entry = session.scalar(
            select(StageTransition).where(
                StageTransition.deal_id == deal_id, StageTransition.key == keys.ARCHIVED
            )
        )
        assert entry is not None
        return Archived(True, by, f"{entry.at:%Y-%m-%d %H:%M} UTC", reference)
