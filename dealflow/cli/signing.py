"""The sales rep's ``deal sign`` (the contract signed by the customer, which the deal's
run waits for) and administration's ``deal archive`` (the signed contract archived)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from dealflow.cli.options import actor, actor_option, fail, not_answered


def _date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise fail(f"--date: not a date (YYYY-MM-DD): {text!r}") from exc


def deal_sign(
    deal_id: str,
    signed_by: Annotated[str, typer.Option(help="Who signed the contract for the customer.")],
    document: Annotated[
        str, typer.Option(help="The signed contract: its document reference or file name.")
    ],
    date: Annotated[
        str | None,
        typer.Option(help="Day the customer signed, YYYY-MM-DD (default: today)."),
    ] = None,
    by: Annotated[
        str | None, actor_option("Who records it (an email)", default="the deal's sales rep")
    ] = None,
) -> None:
    """Record the contract signed by the customer; the deal then goes to delivery kickoff
    and the invoices due at signing and kickoff are sent."""
    from dealflow.answers.signing import SigningError, record_signature
    from dealflow.infra.records import DealNotFound
    from models.signing import ContractSigned

    try:
        answered = record_signature(
            deal_id, signed_by=signed_by, document=document, signed_on=_date(date), by=by
        )
    except (SigningError, DealNotFound) as exc:
        raise fail(f"Nothing was recorded: {exc}") from exc
    signed = answered.answer
    if isinstance(signed, ContractSigned):
        typer.echo(
            f"Recorded the contract of {deal_id} signed by {signed.signed_by} on "
            f"{signed.signed_on} (document {signed.document}); delivery is kicked off now."
        )
        return
    raise not_answered(deal_id, answered, "the signed contract")


def deal_archive(
    deal_id: str,
    reference: Annotated[str, typer.Option(help="Where the signed contract is archived.")],
    by: Annotated[str | None, actor_option("Who archived it")] = None,
) -> None:
    """Record that administration archived the signed contract (due within the matrix's
    business days of signing; the sla-sweep reminds, then escalates)."""
    from dealflow.answers.archiving import ArchiveError, archive_contract
    from dealflow.infra.records import DealNotFound

    try:
        done = archive_contract(deal_id, reference, actor(by))
    except (ArchiveError, DealNotFound) as exc:
        raise fail(f"Nothing was recorded: {exc}") from exc
    if done.new:
        typer.echo(f"Recorded the signed contract of {deal_id} as archived: {done.comment}.")
    else:
        typer.echo(
            f"The archiving of {deal_id} was already recorded by {done.by} at {done.when} "
            f"({done.comment}); nothing was changed."
        )


def register(deal_app: typer.Typer) -> None:
    deal_app.command("sign")(deal_sign)
    deal_app.command("archive")(deal_archive)
