"""The ``dealflow`` command: run the local stack, submit deals, follow them. Each group of
commands is registered here in the order ``--help`` lists them; the larger groups live in
their own modules (deal, finance, matrix, stack, report)."""

from __future__ import annotations

from typing import Annotated

import typer

from dealflow.cli import deal as deal_commands
from dealflow.cli import finance as finance_commands
from dealflow.cli import stack as stack_commands
from dealflow.cli.deal_import import import_deals
from dealflow.cli.matrix import matrix_app
from dealflow.cli.options import fail, moment_option
from dealflow.cli.report import report
from dealflow.infra.echo import echo
from dealflow.infra.prefect_api import use_configured_prefect_server
from models.settings import get_settings

app = typer.Typer(
    help="Dealflow: hands a won B2B deal from sales to the rest of the company.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
deal_app = typer.Typer(help="Submit won deals and follow them.", no_args_is_help=True)
db_app = typer.Typer(help="Dealflow's own database.", no_args_is_help=True)
sla_app = typer.Typer(help="Time limits: reminders and escalations.", no_args_is_help=True)
runs_app = typer.Typer(help="Dealflow's Prefect runs.", no_args_is_help=True)
app.add_typer(deal_app, name="deal")
app.add_typer(db_app, name="db")
app.add_typer(matrix_app, name="matrix")
app.add_typer(stack_commands.stack_app, name="stack")
app.add_typer(sla_app, name="sla")
app.add_typer(runs_app, name="runs")
finance_commands.register(app, deal_app)
deal_app.command("import")(import_deals)
deal_commands.register(deal_app)
app.command("report")(report)
stack_commands.register(app)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate Dealflow's database to the newest schema."""
    from dealflow.infra.db import upgrade

    upgrade()
    typer.echo(f"Database is up to date: {get_settings().resolved_database_url.split('@')[-1]}")


@sla_app.command("sweep")
def sla_sweep_now(
    now: Annotated[
        str | None,
        typer.Option(
            help="Act as if it were this time (ISO 8601, e.g. 2026-12-01T09:00:00+00:00)."
        ),
    ] = None,
) -> None:
    """Send the reminders and escalations now due (the sla-sweep flow, run here)."""
    import httpx

    from flows.sla_sweep import sla_sweep

    moment = moment_option(now)

    try:
        actions = sla_sweep(now=moment)
    except httpx.HTTPError as exc:
        raise fail(f"The sweep did not run: cannot reach the Prefect server ({exc})") from exc
    typer.echo("\n".join(actions) if actions else "Nothing is due.")


@runs_app.command("recover")
def runs_recover(
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Only these flow runs (their ids, as the Prefect UI shows them)."),
    ] = None,
) -> None:
    """Schedule again every run whose process was lost (a worker killed mid-step) or that
    crashed, so it goes on from its last step (the sla-sweep does this too)."""
    import uuid

    import httpx

    from tasks.recovery import recover_lost_runs

    only = None
    if run_ids:
        only = []
        for run_id in run_ids:
            try:
                only.append(uuid.UUID(run_id))
            except ValueError:
                raise fail(
                    f"Not a flow run id: {echo(run_id)} (copy it from the run's page)"
                ) from None
    try:
        actions = recover_lost_runs(only=only)
    except httpx.HTTPError as exc:
        raise fail(f"Nothing was recovered: cannot reach the Prefect server ({exc})") from exc
    typer.echo("\n".join(actions) if actions else "No run has lost its process.")


def main() -> None:
    from pydantic import ValidationError

    try:
        use_configured_prefect_server()
    except ValidationError as exc:
        # One line per setting, without the value: it may be a secret.
        problems = "\n".join(
            f"  DEALFLOW_{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        typer.secho(f"Dealflow's settings are not valid:\n{problems}", fg="red", err=True)
        raise SystemExit(2) from None
    app(prog_name="dealflow")


if __name__ == "__main__":
    main()
