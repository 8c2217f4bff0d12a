"""The signed contract: what the sales rep records after the last approval, and what the
deal's run waits for (key ``signing``) before delivery kickoff and the first invoices.

``ContractSigned`` is an input suspended deal runs wait for; runs already waiting depend
on its fields: add optional fields only.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from models.answers import Proof


class ContractSigned(BaseModel):
    """The customer signed the approved contract, as recorded by the sales rep."""

    signed_by: str = Field(description="Who signed for the customer.")
    signed_on: dt.date
    document: str = Field(description="The signed contract: its reference or file name.")
    recorded_by: str = Field(description="Email of the person who recorded it.")
    recorded_by_name: str = ""
    proof: Proof = ""
