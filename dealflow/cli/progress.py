"""The sales rep's commands while delivery runs (from kickoff to acceptance): ``deal
progress``, the weekly progress report the sla-sweep follows up, and ``deal
change-request``, a change the customer asked for and its decision."""

from __future__ import annotations

from typing import Annotated

import typer

from dealflow.cli.options import actor_option, fail


def deal_progress(
    deal_id: str,
    note: Annotated[str, typer.Option(help="The progress report: a short note.")],
    to_customer: Annotated[
        bool,
        typer.Option(
            "--to-customer",
            help="Also email the note to the customer's contact (the sales rep in copy).",
        ),
    ] = False,
    by: Annotated[
        str | None, actor_option("Who reports (an email)", default="the deal's sales rep")
    ] = None,
) -> None:
    """Record this delivery week's progress report (one a week from kickoff until the
    customer's acceptance; a missed week reminds the rep, two tell the manager)."""
    from dealflow.infra.records import DealNotFound
    from tasks.delivery_progress import ProgressError, record_progress

    try:
        done = record_progress(deal_id, note, (by or "").strip() or None, to_customer=to_customer)
    except (ProgressError, DealNotFound) as exc:
        raise fail(f"Nothing was recorded: {exc}") from exc
    sent = f"; emailed to {done.sent_to}" if done.sent_to else ""
    typer.echo(f"Recorded the progress report of {deal_id} for delivery week {done.week}{sent}.")


def deal_change_request(
    deal_id: str,
    summary: Annotated[str, typer.Option(help="What the customer asked to change.")],
    decision: Annotated[str, typer.Option(help="approved or rejected.", metavar="DECISION")],
    note: Annotated[str, typer.Option(help="Why, or what it changes (optional).")] = "",
    by: Annotated[
        str | None, actor_option("Who records it (an email)", default="the deal's sales rep")
    ] = None,
) -> None:
    """Record a change request the customer made during delivery, with its decision."""
    from dealflow.infra.records import DealNotFound
    from tasks.delivery_progress import ProgressError, record_change_request

    try:
        done = record_change_request(
            deal_id, summary, decision.strip().lower(), (by or "").strip() or None, note
        )
    except (ProgressError, DealNotFound) as exc:
        raise fail(f"Nothing was recorded: {exc}") from exc
    typer.echo(f"Recorded change request {done.number} of {deal_id}: {done.decision}.")


def register(deal_app: typer.Typer) -> None:
    deal_app.command("progress")(deal_progress)
    deal_app.command("change-request")(deal_change_request)
