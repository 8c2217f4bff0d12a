"""The stages before the contract: what the deal flow knows of one, and what a sales rep
reports when it is done (the input a run waiting at that stage is resumed with; runs
already waiting depend on its fields: add optional fields only)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, Field

from models.answers import Proof


def grade_for(score: int) -> str:
    """The handbook's A/B/C grade of a lead score."""
    return "A" if score >= 80 else "B" if score >= 60 else "C"


class StageReport(BaseModel):
    stage: str
    reported_by: str
    reported_at: dt.datetime
    note: str = ""
    score: Annotated[int, Field(ge=0, le=100)] | None = Field(
        default=None, description="Lead score; needed for lead screening."
    )
    visit_date: dt.date | None = Field(default=None, description="Needed for needs discovery.")
    lost: bool = Field(default=False, description="The deal was lost: close it here.")
    proof: Proof = ""


class StagePlan(BaseModel):
    name: str
    title: str
    done: bool  # the rep's report is on the timeline
    opened: bool = False  # the stage was opened for the rep (an earlier pass)
    lost: bool = False  # the report said the deal was lost


class RunPlan(BaseModel):
    """Where a pass of a deal's run starts: whether the run still carries the deal, and
    the stages before the contract it still goes through."""

    # The deal's revision, when it is no longer the run's own: a revision submitted since
    # replaced it and has a run of its own, so this run must end without acting.
    replaced_by: int | None = None
    early_stages: list[StagePlan] = Field(default_factory=list)
