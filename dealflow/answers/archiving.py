"""Recording that administration archived the signed contract: a duty beside the deal's
run (nothing waits for it), followed up by the sla-sweep until it is recorded."""

from __future__ import annotations

from dealflow.infra.records import Recorded, record_once
from models import keys
from models.tables import Deal

MAX_REFERENCE = 200


class ArchiveError(ValueError):
    """The archiving cannot be recorded now; nothing was changed. The message says why."""


def archive_contract(deal_id: str, reference: str, by: str) -> Recorded:
    """Record once that the signed contract of ``deal_id`` is archived under
    ``reference`` (the record's comment). ArchiveError before the contract is signed, or
    without a reference; DealNotFound for no such deal."""
    reference = reference.strip()
    if not reference:
        raise ArchiveError("give the archive reference (--reference)")
    if len(reference) > MAX_REFERENCE:
        raise ArchiveError(f"the archive reference is longer than {MAX_REFERENCE} characters")

    def not_signed(deal: Deal) -> ArchiveError:
        return ArchiveError(
            f"the signed contract of {deal_id} is not recorded yet (it is at {deal.stage})"
        )

    return record_once(
        deal_id,
        keys.ARCHIVED,
        after=keys.SIGNED,
        refuse=not_signed,
        event=f"Signed contract archived with administration, reference {reference}",
        comment=reference,
        by=lambda _deal: by,
    )
