"""The sales rep's ``deal repurchase``: the repurchase conversation with a paid deal's
customer, which the sla-sweep asks for and reminds of until it is recorded."""

from __future__ import annotations

from typing import Annotated

import typer

from dealflow.cli.options import actor_option, fail


def deal_repurchase(
    deal_id: str,
    note: Annotated[
        str, typer.Option(help="How the conversation went: what the customer needs next.")
    ],
    by: Annotated[
        str | None, actor_option("Who records it (an email)", default="the deal's sales rep")
    ] = None,
) -> None:
    """Record the repurchase conversation with the customer of a paid deal (the sales rep
    is asked for it by email 30 days after the payment by default, and reminded once)."""
    from dealflow.answers.repurchase import (
        RepurchaseError,
        already_recorded,
        record_repurchase,
    )
    from dealflow.infra.records import DealNotFound

    try:
        done = record_repurchase(deal_id, note, (by or "").strip() or None)
    except (RepurchaseError, DealNotFound) as exc:
        raise fail(f"Nothing was recorded: {exc}") from exc
    if done.new:
        typer.echo(f"Recorded the repurchase conversation of {deal_id}.")
    else:
        typer.echo(str(already_recorded(deal_id, done)))


def register(deal_app: typer.Typer) -> None:
    deal_app.command("repurchase")(deal_repurchase)
