"""What the deal flow knows about a gate between steps."""

from __future__ import annotations

from pydantic import BaseModel

from models.decision import GateDecision


class GatePlan(BaseModel):
    name: str
    title: str
    role: str
    assignee_email: str
    assignee_name: str
    decision: GateDecision | None = None  # as Dealflow's database records it
    recorded: bool = False  # the decision is on the deal's timeline (an earlier pass)
    revision: int = 1  # the deal's revision the gate belongs to: it acts for that one only


def approval_stage(gate: str) -> str:
    return f"approval:{gate}"
