"""What an approver decides at a gate: the input a suspended deal run waits for.

Suspended runs are resumed with this model's JSON schema stored by Prefect, so its
fields are part of the contract with runs already waiting: add optional fields only.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from models.answers import Proof


class GateDecision(BaseModel):
    approved: bool
    decided_by: str = Field(description="Email of the person who decided.")
    decided_by_name: str = ""
    comment: str = ""
    decided_at: dt.datetime
    proof: Proof = ""
