"""What the HTTP intake answers: the receipt of an accepted deal, or the problem."""

from __future__ import annotations

from pydantic import BaseModel, Field


class DealReceipt(BaseModel):
    """The deal and its one flow run; a retry of the same deal gets the same receipt."""

    deal_id: str = Field(examples=["ACME-2026-014"])
    revision: int = Field(
        default=1, description="1, or the revision of a rejected deal submitted again."
    )
    flow_run_id: str = Field(description="The flow run of the deal (of this revision).")
    flow_run_url: str = Field(description="The flow run in the Prefect UI (operations staff).")
    status_url: str = Field(
        description="GET it, with the same credentials, for the deal's stage and timeline."
    )


class Problem(BaseModel):
    """Why the request was refused, in words meant for whoever configures the CRM."""

    detail: str
