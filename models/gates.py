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


def pause_key(gate: str) -> str:
    """The suspend key of a gate. Runs already waiting depend on it: never change it.
    (Prefect's input keys take lowercase letters, digits and dashes only.)"""
    return f"gate-{gate.replace('_', '-')}"


def approval_stage(gate: str) -> str:
    return f"approval:{gate}"
