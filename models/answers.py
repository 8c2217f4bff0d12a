"""Answers to a waiting deal run: the proof every answer Dealflow sends carries.

A suspended run takes whatever input fits its schema from anyone who can reach the
Prefect API (the UI's Resume button included). So every answer Dealflow sends carries a
``proof``: its signature over the run, the key the run waits under and the answer itself.
The flow believes an answer only with a valid proof, or when Dealflow's database already
records what it says; anything else is refused and the run waits again under the next
attempt key (``gate-legal``, then ``gate-legal-attempt-2``, ...), so that the deal keeps
waiting on its real approver. The keys themselves are built in models/keys.py.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# The answer models add this field last (runs already waiting depend on their fields:
# add optional fields only). Prefect's Resume form shows its description.
Proof = Annotated[
    str,
    Field(
        description="Set by Dealflow only. Decisions are made from the link in the "
        "approver's email; an answer typed here is refused and the deal keeps waiting."
    ),
]

RESUME_FORM_NOTE = (
    "**Dealflow decides this step from its own pages.** Approvals, acceptance and stage "
    "reports are recorded from the links in Dealflow's emails or with the `dealflow` "
    "command; payments by finance. An answer sent from this form carries no proof that "
    "Dealflow checked it: it is refused, noted on the deal's timeline, and the deal "
    "keeps waiting on the same person. Cancel still works as usual."
)
