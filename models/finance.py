"""Finance's vocabulary: delivery acceptance, a deal paid in full, and the dunning ladder.

``DeliveryAcceptance`` and ``PaymentsSettled`` are inputs that suspended deal runs wait
for; runs already waiting depend on their fields: add optional fields only.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from models.answers import Proof
from models.language import Language

CUSTOMER = "customer"  # in a level's notify list: the invoice's billing contact
SALES_REP = "sales_rep"  # a role the deal names itself: its submitting rep


class DeliveryAcceptance(BaseModel):
    """The customer accepted the delivery, as recorded by the delivery manager."""

    accepted_by: str = Field(description="Email of the person who recorded it.")
    accepted_by_name: str = ""
    accepted_on: dt.date
    note: str = ""
    report: str = Field(
        default="", description="The customer's signed acceptance report: its number or file."
    )
    proof: Proof = ""


class PaymentsSettled(BaseModel):
    """Every invoice of the deal is paid (or written off)."""

    settled_at: dt.datetime
    last_payment: str = Field(default="", description="The payment that settled the deal.")
    proof: Proof = ""


class DunningLevel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,38}$")]
    days: int = Field(
        ge=-60, le=365, description="Days past the due date (negative: before it) it is sent."
    )
    notify: list[str] = Field(
        min_length=1, description="'customer' (the billing contact) and/or matrix roles."
    )
    title: str = Field(default="", description="How the level reads in emails and reports.")
    titles: dict[Language, str] = Field(
        default_factory=dict, description="The title in other languages: {zh_Hans: ...}."
    )
    hold: bool = Field(default=False, description="Put the customer on collections hold.")

    @property
    def label(self) -> str:
        return self.title or self.name.replace("-", " ")

    def label_in(self, language: str) -> str:
        """The title as readers of ``language`` read it (the English one if not given)."""
        return self.titles.get(language, self.label)

    @property
    def roles(self) -> list[str]:
        return [who for who in self.notify if who != CUSTOMER]

    @property
    def tells_customer(self) -> bool:
        return CUSTOMER in self.notify


class DunningLadder(BaseModel):
    """Follow-up levels by days overdue: one action per level, each sent once per invoice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    business_days: bool = Field(
        default=False,
        description="Count days overdue in working days on the deal team's calendar.",
    )
    levels: list[DunningLevel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ascending_and_unique(self) -> DunningLadder:
        days = [level.days for level in self.levels]
        if days != sorted(set(days)):
            raise ValueError(f"levels must have strictly increasing days (got {days})")
        names = [level.name for level in self.levels]
        if len(names) != len(set(names)):
            raise ValueError(f"level names must be unique (got {names})")
        return self

    def rank(self, name: str | None) -> int:
        """A level's place on the ladder, from 1; 0 for none."""
        return next((i for i, level in enumerate(self.levels, 1) if level.name == name), 0)

    def level_due(self, days_overdue: int) -> tuple[int, DunningLevel] | None:
        """The highest level due at ``days_overdue``, with its rank; None if none yet."""
        due = None
        for rank, level in enumerate(self.levels, 1):
            if days_overdue >= level.days:
                due = (rank, level)
        return due

    @property
    def earliest_days(self) -> int:
        return self.levels[0].days if self.levels else 0


AGING_BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
