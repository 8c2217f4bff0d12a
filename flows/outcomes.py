"""How a deal's run ends, as the Prefect UI shows it on the Runs page.

A paid deal ends Completed, named "Paid". A rejected or lost deal cannot go on, and
should not look like a success: it ends Cancelled, named "Rejected" or "Lost". All
three are final states that nothing retries or recovers. So is the end of a run whose
revision a later one replaced: Cancelled, named "Superseded".
"""

from __future__ import annotations

from typing import Literal, TypeVar, cast

from prefect.states import Cancelled, Completed, State

from models.revisions import superseded_message

Outcome = Literal["paid", "rejected", "lost"]
Result = TypeVar("Result")


def ended(outcome: Outcome, deal_id: str) -> State:
    """The final state of ``deal_id``'s run; its result is the outcome's name."""
    if outcome == "paid":
        return Completed(name="Paid", message=f"{deal_id}: paid in full", data=outcome)
    if outcome == "rejected":
        return Cancelled(name="Rejected", message=f"{deal_id}: rejected at an approval gate")
    return Cancelled(name="Lost", message=f"{deal_id}: lost before the contract")


def superseded(deal_id: str, revision: int, current: int) -> State:
    """The end of a run whose ``revision`` was replaced by the deal's ``current`` one:
    Cancelled, named "Superseded", having done nothing (the new revision's run carries
    the deal)."""
    return Cancelled(name="Superseded", message=superseded_message(deal_id, revision, current))


def reported(result: Result, message: str) -> Result:
    """A scheduled flow's end: Completed with ``message``, what it did in a person's
    words, shown on the run in the Prefect UI and printed by the command that started it
    (results are not persisted, so the message is how the outcome reaches the API).
    Prefect hands a caller in this process ``result`` itself, hence the cast."""
    return cast(Result, Completed(message=message, data=result))
