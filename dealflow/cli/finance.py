"""Finance's commands: record payments, import bank statements, run the payment check,
manage disputes and holds; and the delivery manager's ``deal accept``."""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path
from typing import Annotated

import typer

from dealflow.cli.options import fail, moment_option, not_answered

payments_app = typer.Typer(
    help="Money received: record a payment, import a bank statement, run the payment "
    "check (dunning ladder, aging report).",
    no_args_is_help=True,
)
# `dealflow payment record` was the first spelling: it still works, out of the help.
payment_app = typer.Typer(help="Old spelling of `dealflow payments`.", no_args_is_help=True)
invoice_app = typer.Typer(help="Invoices: what is open, disputes.", no_args_is_help=True)
hold_app = typer.Typer(help="Customers on collections hold.", no_args_is_help=True)


def _who(by: str | None) -> str:
    return by or getpass.getuser()


def _date(text: str | None, option: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise fail(f"{option}: not a date (YYYY-MM-DD): {text!r}") from exc


def _report_settled(deal_ids: list[str]) -> None:
    from dealflow.answers.settlement import settle_deal

    for deal_id in deal_ids:
        typer.echo(settle_deal(deal_id))


@payments_app.command("record")
def payment_record(
    invoice: Annotated[str, typer.Option(help="Invoice number, e.g. INV-ACME-2026-014-01.")],
    amount: Annotated[str, typer.Option(help="Amount received, in the invoice's currency.")],
    date: Annotated[
        str | None, typer.Option(help="Day the money arrived, YYYY-MM-DD (default: today).")
    ] = None,
    reference: Annotated[str, typer.Option(help="The bank's reference of the payment.")] = "",
    by: Annotated[str | None, typer.Option(help="Who records it (default: you).")] = None,
    second_payment: Annotated[
        bool,
        typer.Option(
            "--second-payment",
            help="The same amount came from the bank a few days apart and this is another one.",
        ),
    ] = False,
) -> None:
    """Record one payment against an invoice; a partial payment keeps it in the ladder."""
    from dealflow.finance.payments import PaymentDetails, PaymentError, parse_amount, record_payment
    from dealflow.infra.clock import utcnow

    try:
        value = parse_amount(amount)
    except PaymentError as exc:
        raise fail(f"--amount: {exc}") from exc
    received = _date(date, "--date") or utcnow().date()
    if received > utcnow().date() + dt.timedelta(days=1):
        raise fail(f"--date: {received} is in the future")
    details = PaymentDetails(
        invoice.strip().upper(),
        value,
        received,
        reference.strip(),
        second_of_same_amount=second_payment,
    )
    try:
        result = record_payment(details, source="cli", recorded_by=_who(by))
    except PaymentError as exc:
        raise fail(f"Nothing was recorded: {exc}") from exc
    typer.echo(f"Recorded: {result.describe()}")
    if result.deal_settled:
        _report_settled([result.deal_id])


@payments_app.command("import")
def payments_import(
    file: Annotated[Path, typer.Argument(help="Bank statement as CSV: date, amount, reference.")],
    by: Annotated[str | None, typer.Option(help="Who imports it (default: you).")] = None,
) -> None:
    """Match a bank statement's incoming lines to invoices by the invoice number in their
    reference and record them; lines already imported are skipped."""
    from dealflow.finance.bank_statement import StatementError, import_statement

    try:
        report = import_statement(file, recorded_by=_who(by))
    except StatementError as exc:
        raise fail("Nothing was imported:\n" + "\n".join(f"  {p}" for p in exc.problems)) from exc
    typer.echo(report.summary())
    _report_settled(report.settled_deals)


@payments_app.command("check")
def payments_check(
    now: Annotated[
        str | None,
        typer.Option(help="Act as if it were this time (ISO 8601 with a time zone)."),
    ] = None,
) -> None:
    """Run the payment check here: dunning ladder, closing paid deals, aging report."""
    import httpx

    from flows.payment_check import payment_check

    moment = moment_option(now)
    try:
        typer.echo(payment_check(now=moment))
    except httpx.HTTPError as exc:
        raise fail(f"The check did not run: cannot reach the Prefect server ({exc})") from exc


@invoice_app.command("list")
def invoice_list(
    limit: Annotated[int, typer.Option(help="How many to show.")] = 50,
) -> None:
    """Invoices with money to come, the longest overdue first."""
    from dealflow.finance.receivables import open_invoices

    rows, total = open_invoices(limit)
    for row in rows:
        flags = " ".join(f for f in (row.dunning_level or "", "HOLD" if row.on_hold else "") if f)
        typer.echo(
            f"{row.number:<28} due {row.due_date}  {row.balance:>14,.2f} {row.currency}  "
            f"{row.status:<15} {row.customer} {flags}".rstrip()
        )
    typer.echo(f"{len(rows)} of {total} open invoice(s) shown.")


@invoice_app.command("dispute")
def invoice_dispute(
    number: str,
    reason: Annotated[str, typer.Option(help="What the customer disputes.")],
    by: Annotated[str | None, typer.Option(help="Who records it (default: you).")] = None,
) -> None:
    """Take an invoice out of the dunning ladder while the customer disputes it."""
    from dealflow.finance.receivables import ReceivableError, dispute_invoice

    try:
        typer.echo(dispute_invoice(number.upper(), reason, _who(by)))
    except ReceivableError as exc:
        raise fail(f"Nothing was changed: {exc}") from exc


@invoice_app.command("resolve")
def invoice_resolve(
    number: str,
    by: Annotated[str | None, typer.Option(help="Who records it (default: you).")] = None,
) -> None:
    """End a dispute: the invoice is back in the ladder at the level it had reached."""
    from dealflow.finance.receivables import ReceivableError, resolve_dispute

    try:
        typer.echo(resolve_dispute(number.upper(), _who(by)))
    except ReceivableError as exc:
        raise fail(f"Nothing was changed: {exc}") from exc


@invoice_app.command("write-off")
def invoice_write_off(
    number: str,
    reason: Annotated[str, typer.Option(help="Why the balance will not be collected.")],
    by: Annotated[str | None, typer.Option(help="Who decides it (default: you).")] = None,
) -> None:
    """Write off an invoice's open balance; a deal with nothing left to pay closes."""
    from dealflow.finance.receivables import ReceivableError, write_off

    try:
        message, deal_id = write_off(number.upper(), reason, _who(by))
    except ReceivableError as exc:
        raise fail(f"Nothing was changed: {exc}") from exc
    typer.echo(message)
    _report_settled([deal_id])


@invoice_app.command("reopen")
def invoice_reopen(
    number: str,
    by: Annotated[str | None, typer.Option(help="Who decides it (default: you).")] = None,
) -> None:
    """Undo a write-off: the invoice is open again."""
    from dealflow.finance.receivables import ReceivableError, reopen

    try:
        typer.echo(reopen(number.upper(), _who(by)))
    except ReceivableError as exc:
        raise fail(f"Nothing was changed: {exc}") from exc


@hold_app.command("clear")
def hold_clear(
    customer: str,
    by: Annotated[str | None, typer.Option(help="Who clears it (default: you).")] = None,
) -> None:
    """Take a customer off collections hold: their invoices are back in the ladder."""
    from dealflow.finance.receivables import ReceivableError, clear_hold

    try:
        typer.echo(clear_hold(customer, _who(by)))
    except ReceivableError as exc:
        raise fail(f"Nothing was changed: {exc}") from exc


def deal_accept(
    deal_id: str,
    date: Annotated[
        str | None, typer.Option(help="Day the customer accepted, YYYY-MM-DD (default: today).")
    ] = None,
    note: Annotated[str, typer.Option(help="For the timeline.")] = "",
    by: Annotated[
        str | None, typer.Option(help="Who records it (default: the delivery manager).")
    ] = None,
) -> None:
    """Record the customer's acceptance of the delivery; releases the invoices due on it."""
    from dealflow.answers.acceptance import AcceptanceError, accept_delivery
    from dealflow.infra.records import DealNotFound
    from models.finance import DeliveryAcceptance

    try:
        answered = accept_delivery(deal_id, by=by, accepted_on=_date(date, "--date"), note=note)
    except (AcceptanceError, DealNotFound) as exc:
        raise fail(f"Nothing was recorded: {exc}") from exc
    accepted = answered.answer
    if isinstance(accepted, DeliveryAcceptance):
        typer.echo(
            f"Recorded acceptance of {deal_id} on {accepted.accepted_on} by {accepted.accepted_by_name}."
        )
        return
    raise not_answered(deal_id, answered, "acceptance")


def deal_renew_acceptance_link(
    deal_id: str,
    by: Annotated[str | None, typer.Option(help="Who asks for it (default: you).")] = None,
) -> None:
    """Mail the delivery manager a fresh acceptance link, for a delivery that outlasts
    the first one (DEALFLOW_ACCEPTANCE_LINK_TTL_DAYS, 120 days); earlier links keep
    working until they expire."""
    from dealflow.infra.records import DealNotFound
    from tasks.closing import AcceptanceLinkError, renew_acceptance_link

    try:
        typer.echo(renew_acceptance_link(deal_id, _who(by)))
    except (AcceptanceLinkError, DealNotFound) as exc:
        raise fail(f"No link was sent: {exc}") from exc


def deal_confirm_plan(
    deal_id: str,
    note: Annotated[str, typer.Option(help="For the timeline.")] = "",
    by: Annotated[str | None, typer.Option(help="Who confirmed it (default: you).")] = None,
) -> None:
    """Record that the delivery plan is confirmed with the customer."""
    from dealflow.answers.delivery_plan import PlanError, confirm_plan
    from dealflow.infra.records import DealNotFound

    try:
        new = confirm_plan(deal_id, _who(by), note)
    except (PlanError, DealNotFound) as exc:
        raise fail(f"Nothing was recorded: {exc}") from exc
    typer.echo(f"Delivery plan of {deal_id} confirmed." if new else "It was confirmed before.")


def register(app: typer.Typer, deal_app: typer.Typer) -> None:
    app.add_typer(payments_app, name="payments")
    app.add_typer(payment_app, name="payment", hidden=True)
    payment_app.command("record", hidden=True)(payment_record)
    app.add_typer(invoice_app, name="invoice")
    app.add_typer(hold_app, name="hold")
    deal_app.command("accept")(deal_accept)
    deal_app.command("renew-acceptance-link")(deal_renew_acceptance_link)
    deal_app.command("confirm-plan")(deal_confirm_plan)
