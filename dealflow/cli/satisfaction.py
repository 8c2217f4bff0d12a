"""Customer success's ``deal answer-complaint``: the answer to the complaint a low
satisfaction score opened (due within the matrix's business hours; the sla-sweep
escalates it when it is late)."""

from __future__ import annotations

from typing import Annotated

import typer

from dealflow.cli.options import actor_option, fail


def deal_answer_complaint(
    deal_id: str,
    answer: Annotated[str, typer.Option(help="How the customer's complaint was answered.")],
    by: Annotated[
        str | None,
        actor_option(
            "Who answered it (an email)",
            default="the deal's customer success person (the matrix's success_role)",
        ),
    ] = None,
) -> None:
    """Record the answer to the customer's complaint (opened by a satisfaction score of 6
    or less; due within the matrix's complaint_business_hours)."""
    from dealflow.infra.records import DealNotFound
    from tasks.satisfaction import SatisfactionError, answer_complaint

    try:
        done = answer_complaint(deal_id, answer, (by or "").strip() or None)
    except (SatisfactionError, DealNotFound) as exc:
        raise fail(f"Nothing was recorded: {exc}") from exc
    if done.new:
        typer.echo(f"Recorded the answer to the complaint of {deal_id}.")
    else:
        typer.echo(
            f"The complaint of {deal_id} was already answered by {done.by} at {done.when}; "
            "nothing was changed."
        )


def register(deal_app: typer.Typer) -> None:
    deal_app.command("answer-complaint")(deal_answer_complaint)
