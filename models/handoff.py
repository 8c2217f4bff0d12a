"""What the deal flow knows, between passes, about the steps after the last gate."""

from __future__ import annotations

from pydantic import BaseModel


class HandoffPlan(BaseModel):
    """Which steps after the last gate an earlier pass finished, emails included.

    A step writes its timeline key and then, after the commit, queues its emails: its own
    key alone does not prove its emails went. So each step counts as finished by the key
    of a step the flow takes only after it, and a pass that ended in between runs the
    step again (idempotently, as before)."""

    # The signed contract recorded (by the link or the CLI, which resume only a run
    # waiting for it: the signing request went before the run suspended). A deal handed
    # over by a release before signing was a step counts as signed.
    signed: bool = False
    # Delivery kicked off and the first invoices sent: the acceptance was requested.
    handed_over: bool = False
    # Recorded by the link or the CLI, which resume only a run waiting for it: the
    # acceptance request went before the run suspended.
    accepted: bool = False
    # Customer success told and the customer's survey sent, or nothing to do: the
    # matrix names no success role, or the deal went on to await its payment (the step
    # the flow takes after it; a deal accepted under a release before customer success
    # is not handed over late).
    handed_to_success: bool = False
    # The invoices due on acceptance sent: the deal awaits payment.
    invoiced_at_acceptance: bool = False
