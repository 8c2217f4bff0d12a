"""Finance's commands: record payments, import bank statements, run the payment check,
manage disputes and holds; and the delivery manager's ``deal accept``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from dealflow.cli.app import Group
from dealflow.cli.deployment_runs import here_option, run_and_report
from dealflow.cli.options import (
    actor,
    actor_option,
    fail,
    moment_option,
    not_answered,
    quiet_prefect_console,
)

payments_app = Group(
    help="Money received: record a payment, import a bank statement, run the payment "
    "check (dunning ladder, aging report).",
)
# `dealflow payment ...` was the first spelling: it still works, out of the help, and says
# on stderr that it is now `dealflow payments ...` (scripts written for it keep working).
payment_app = Group(help="Old spelling of `dealflow payments`: use that.")
invoice_app = Group(help="Invoices: what is open, disputes.")
hold_app = Group(help="Customers on collections hold.")
INVOICE_NUMBER = "The invoice's number, e.g. INV-ACME-2026-014-01."


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
        typer.echo(str(settle_deal(deal_id)))


@payments_app.command("record")
def payment_record(
    invoice: Annotated[str, typer.Option(help="Invoice number, e.g. INV-ACME-2026-014-01.")],
    amount: Annotated[str, typer.Option(help="Amount received, in the invoice's currency.")],
    date: Annotated[
        str | None, typer.Option(help="Day the money arrived, YYYY-MM-DD (default: today).")
    ] = None,
    reference: Annotated[str, typer.Option(help="The bank's reference of the payment.")] = "",
    by: Annotated[str | None, actor_option("Who records it")] = None,
    second_payment: Annotated[
        bool,
        typer.Option(
            "--second-payment",
            help="This is another payment, though one just like it (the same invoice and "
            "amount, the same day and reference, or imported from the bank a few days "
            "apart) is recorded already.",
        ),
    ] = False,
) -> None:
    """Record one payment against an invoice; a partial payment keeps it in the ladder."""
    from dealflow.finance.payments import (
        DuplicatePayment,
        LookAlikePayment,
        PaymentDetails,
        PaymentError,
        parse_amount,
        record_payment,
    )
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
        result = record_payment(details, source="cli", recorded_by=actor(by))
    except LookAlikePayment as exc:  # it says to pass --second-payment
        raise fail(f"Nothing was recorded: {exc}") from exc
    except DuplicatePayment as exc:
        raise fail(
            f"Nothing was recorded: {exc}.\nIf this is another payment of the same amount, "
            "record it again with --second-payment (or with the bank's own reference of it "
            "in --reference)."
        ) from exc
    except PaymentError as exc:
        raise fail(f"Nothing was recorded: {exc}") from exc
    typer.echo(f"Recorded: {result.describe()}")
    if result.deal_settled:
        _report_settled([result.deal_id])


@payments_app.command("import")
def payments_import(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="STATEMENT_FILE", help="Bank statement as CSV: date, amount, reference."
        ),
    ],
    by: Annotated[str | None, actor_option("Who imports it")] = None,
) -> None:
    """Match a bank statement's incoming lines to invoices by the invoice number in their
    reference and record them; lines already imported are skipped."""
    from dealflow.finance.bank_statement import StatementError, import_statement

    try:
        report = import_statement(file, recorded_by=actor(by))
    except StatementError as exc:
        raise fail("Nothing was imported:\n" + "\n".join(f"  {p}" for p in exc.problems)) from exc
    typer.echo(report.summary())
    _report_settled(report.settled_deals)


@payments_app.command("check")
def payments_check(
    now: Annotated[
        str | None,
        typer.Option(
            help="Run the real check as if it were this time (ISO 8601 with a time zone): "
            "letters are really sent, customers really put on collections hold, and "
            "timeline entries dated then. To only see what it would do, add --dry-run.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Change nothing and send nothing: print which invoices would reach which "
            "dunning level, who would be told and which customers would go on hold. "
            "Needs no Prefect server.",
        ),
    ] = False,
    here: Annotated[bool, here_option("the check")] = False,
) -> None:
    """Run the payment check now: dunning ladder, closing paid deals, aging report.

    It acts for real, also with --now; --dry-run only says what it would do.

    It runs as a run of the payment-check deployment (on the stack's runner, under the
    deployment in the Prefect UI) and prints what it did."""
    quiet_prefect_console()
    moment = moment_option(now)
    if dry_run:
        from dealflow.infra.clock import utcnow
        from flows.payment_check import what_it_would_do
        from tasks.dunning import preview_dunning_ladder

        typer.echo(what_it_would_do(preview_dunning_ladder(moment or utcnow())))
        return

    from flows.payment_check import payment_check

    typer.echo(
        run_and_report(
            "payment-check/payment-check", payment_check, moment, here, "the payment check"
        )
    )


@invoice_app.command("list")
def invoice_list(
    limit: Annotated[int, typer.Option(help="How many to show.")] = 50,
) -> None:
    """Invoices with money to come, the longest overdue first."""
    from dealflow.finance.receivables import open_invoices

    rows, total = open_invoices(limit)
    if not rows:
        typer.echo("No invoice has money to come.")
        return
    table = [("Invoice", "Due", "Open balance", "Cur.", "Status", "Dunning", "Customer")] + [
        (
            row.number,
            row.due_date.isoformat(),
            f"{row.balance:,.2f}",
            row.currency,
            row.status.replace("_", " "),
            " ".join(f for f in (row.dunning_level or "", "HOLD" if row.on_hold else "") if f)
            or "-",
            row.customer,
        )
        for row in rows
    ]
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        cells = [
            cell.rjust(width) if column == 2 else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        typer.echo("  ".join(cells).rstrip())
    typer.echo(f"{len(rows)} of {total} open invoice(s) shown, the longest overdue first.")


@invoice_app.command("dispute")
def invoice_dispute(
    number: Annotated[str, typer.Argument(metavar="INVOICE", help=INVOICE_NUMBER)],
    reason: Annotated[str, typer.Option(help="What the customer disputes.")],
    by: Annotated[str | None, actor_option("Who records it")] = None,
) -> None:
    """Take an invoice out of the dunning ladder while the customer disputes it."""
    from dealflow.finance.receivables import ReceivableError, dispute_invoice

    try:
        typer.echo(dispute_invoice(number.upper(), reason, actor(by)))
    except ReceivableError as exc:
        raise fail(f"Nothing was changed: {exc}") from exc


@invoice_app.command("resolve")
def invoice_resolve(
    number: Annotated[str, typer.Argument(metavar="INVOICE", help=INVOICE_NUMBER)],
    by: Annotated[str | None, actor_option("Who records it")] = None,
) -> None:
    """End a dispute: the invoice is back in the ladder at the level it had reached."""
    from dealflow.finance.receivables import ReceivableError, resolve_dispute

    try:
        typer.echo(resolve_dispute(number.upper(), actor(by)))
    except ReceivableError as exc:
        raise fail(f"Nothing was changed: {exc}") from exc


@invoice_app.command("write-off")
def invoice_write_off(
    number: Annotated[str, typer.Argument(metavar="INVOICE", help=INVOICE_NUMBER)],
    reason: Annotated[str, typer.Option(help="Why the balance will not be collected.")],
    by: Annotated[str | None, actor_option("Who decides it")] = None,
) -> None:
    """Write off an invoice's open balance; a deal with nothing left to pay closes."""
    from dealflow.finance.receivables import ReceivableError, write_off

    try:
        message, deal_id = write_off(number.upper(), reason, actor(by))
    except ReceivableError as exc:
        raise fail(f"Nothing was changed: {exc}") from exc
    typer.echo(message)
    _report_settled([deal_id])


@invoice_app.command("reopen")
def invoice_reopen(
    number: Annotated[str, typer.Argument(metavar="INVOICE", help=INVOICE_NUMBER)],
    by: Annotated[str | None, actor_option("Who decides it")] = None,
) -> None:
    """Undo a write-off: the invoice is open again."""
    from dealflow.finance.receivables import ReceivableError, reopen

    try:
        typer.echo(reopen(number.upper(), actor(by)))
    except ReceivableError as exc:
        raise fail(f"Nothing was changed: {exc}") from exc


@hold_app.command("clear")
def hold_clear(
    customer: str,
    by: Annotated[str | None, actor_option("Who clears it")] = None,
) -> None:
    """Take a customer off collections hold: their invoices are back in the ladder."""
    from dealflow.finance.receivables import ReceivableError, clear_hold

    try:
        typer.echo(clear_hold(customer, actor(by)))
    except ReceivableError as exc:
        raise fail(f"Nothing was changed: {exc}") from exc


def deal_accept(
    deal_id: str,
    date: Annotated[
        str | None, typer.Option(help="Day the customer accepted, YYYY-MM-DD (default: today).")
    ] = None,
    note: Annotated[str, typer.Option(help="For the timeline.")] = "",
    report: Annotated[
        str,
        typer.Option(help="The customer's signed acceptance report: its number or file name."),
    ] = "",
    by: Annotated[
        str | None, actor_option("Who records it", default="the delivery manager")
    ] = None,
) -> None:
    """Record the customer's acceptance of the delivery; releases the invoices due on it."""
    from dealflow.answers.acceptance import AcceptanceError, accept_delivery
    from dealflow.infra.records import DealNotFound
    from models.finance import DeliveryAcceptance

    try:
        answered = accept_delivery(
            deal_id, by=by, accepted_on=_date(date, "--date"), note=note, report=report.strip()
        )
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
    by: Annotated[str | None, actor_option("Who asks for it")] = None,
) -> None:
    """Mail the delivery manager a fresh acceptance link, for a delivery that outlasts
    the first one (DEALFLOW_ACCEPTANCE_LINK_TTL_DAYS, 120 days); earlier links keep
    working until they expire."""
    from dealflow.infra.records import DealNotFound
    from tasks.closing import AcceptanceLinkError, renew_acceptance_link

    try:
        typer.echo(renew_acceptance_link(deal_id, actor(by)))
    except (AcceptanceLinkError, DealNotFound) as exc:
        raise fail(f"No link was sent: {exc}") from exc


def deal_confirm_plan(
    deal_id: str,
    note: Annotated[str, typer.Option(help="For the timeline.")] = "",
    by: Annotated[str | None, actor_option("Who confirmed it")] = None,
) -> None:
    """Record that the delivery plan is confirmed with the customer."""
    from dealflow.answers.delivery_plan import PlanError, confirm_plan
    from dealflow.infra.records import DealNotFound

    try:
        new = confirm_plan(deal_id, actor(by), note)
    except (PlanError, DealNotFound) as exc:
        raise fail(f"Nothing was recorded: {exc}") from exc
    typer.echo(f"Delivery plan of {deal_id} confirmed." if new else "It was confirmed before.")


@payment_app.callback()
def payment_old_spelling(ctx: typer.Context) -> None:
    """Old spelling of `dealflow payments`: use that."""
    command = " ".join(filter(None, ["dealflow payments", ctx.invoked_subcommand]))
    typer.echo(f"Note: `dealflow payment` is deprecated; use `{command}`.", err=True)


def register(app: typer.Typer, deal_app: typer.Typer) -> None:
    app.add_typer(payments_app, name="payments")
    app.add_typer(payment_app, name="payment", hidden=True)
    for name, command in (
        ("record", payment_record),
        ("import", payments_import),
        ("check", payments_check),
    ):
        payment_app.command(name)(command)
    app.add_typer(invoice_app, name="invoice")
    app.add_typer(hold_app, name="hold")
    deal_app.command("accept")(deal_accept)
    deal_app.command("renew-acceptance-link")(deal_renew_acceptance_link)
    deal_app.command("confirm-plan")(deal_confirm_plan)
