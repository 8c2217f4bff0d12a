"""The ``dealflow`` command: run the local stack, submit deals, follow them. Each group of
commands is registered here, and ``--help`` lists them in the order of ``COMMANDS``; the
larger groups live in their own modules (deal, finance, matrix, stack, report)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.exc import OperationalError

from dealflow.cli import deal as deal_commands
from dealflow.cli import finance as finance_commands
from dealflow.cli import prefect_cli
from dealflow.cli import progress as progress_commands
from dealflow.cli import repurchase as repurchase_commands
from dealflow.cli import satisfaction as satisfaction_commands
from dealflow.cli import signing as signing_commands
from dealflow.cli import stack as stack_commands
from dealflow.cli.app import Group
from dealflow.cli.deal_import import import_deals
from dealflow.cli.deployment_runs import here_option, run_and_report
from dealflow.cli.matrix import matrix_app
from dealflow.cli.options import fail, moment_option, quiet_prefect_console
from dealflow.cli.report import report
from dealflow.cli.worker import worker
from dealflow.infra.echo import echo
from dealflow.infra.prefect_api import use_configured_prefect_server
from models.settings import get_settings

# The order `dealflow --help` lists the commands in: the order a user meets them. First the
# stack and its deployments (nothing runs without them), then a deal's life: sales submits
# and follows it, finance records its payments, then its invoices and holds, and the review
# reports on it; last what operations run now and then: the SLA sweep, recovering runs,
# Prefect's own CLI on the stack, checking the matrix, migrating the database.
COMMANDS = (
    "stack",
    "deploy",
    "worker",
    "deal",
    "payments",
    "invoice",
    "hold",
    "report",
    "sla",
    "runs",
    "prefect",
    "matrix",
    "db",
)
# `dealflow deal --help` likewise: a deal's commands in the order of its life.
DEAL_COMMANDS = (
    "submit",
    "import",
    "status",
    "resubmit",
    "report",
    "sign",
    "archive",
    "confirm-plan",
    "progress",
    "change-request",
    "accept",
    "renew-acceptance-link",
    "answer-complaint",
    "repurchase",
)

app = Group(
    help="Dealflow: hands a won B2B deal from sales to the rest of the company.",
    order=COMMANDS,
    pretty_exceptions_enable=False,
)
deal_app = Group(help="Submit won deals and follow them.", order=DEAL_COMMANDS)
db_app = Group(help="Dealflow's own database.")
sla_app = Group(help="Time limits: reminders and escalations.")
runs_app = Group(help="Dealflow's Prefect runs.")
app.add_typer(deal_app, name="deal")
app.add_typer(db_app, name="db")
app.add_typer(matrix_app, name="matrix")
app.add_typer(stack_commands.stack_app, name="stack")
app.add_typer(sla_app, name="sla")
app.add_typer(runs_app, name="runs")
finance_commands.register(app, deal_app)
deal_app.command("import")(import_deals)
deal_commands.register(deal_app)
signing_commands.register(deal_app)
repurchase_commands.register(deal_app)
progress_commands.register(deal_app)
satisfaction_commands.register(deal_app)
app.command("report")(report)
stack_commands.register(app)
app.command("worker")(worker)
prefect_cli.register(app)


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
    here: Annotated[bool, here_option("the sweep")] = False,
) -> None:
    """Send the reminders and escalations now due: a run of the sla-sweep deployment,
    which prints what it did."""
    quiet_prefect_console()
    from flows.sla_sweep import sla_sweep

    typer.echo(
        run_and_report("sla-sweep/sla-sweep", sla_sweep, moment_option(now), here, "the sweep")
    )


@runs_app.command("recover")
def runs_recover(
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="RUN_ID",
            help="Only these flow runs (their ids, as the Prefect UI shows them).",
        ),
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
    try:
        app(prog_name="dealflow")
    except OperationalError:
        missing = missing_data_folder()
        if missing is None:
            raise
        typer.secho(missing, fg="red", err=True)
        raise SystemExit(1) from None


def missing_data_folder() -> str | None:
    """Why Dealflow's embedded database cannot be opened, if its data folder is not where
    the settings say: usually the command was run outside the project folder, where the
    relative default (.dealflow) points nowhere."""
    settings = get_settings()
    folder = settings.data_dir.resolve()
    if settings.database_url or folder.is_dir():
        return None
    return (
        f"Dealflow's data is not in {folder}: run dealflow in the project folder, or set "
        "DEALFLOW_DATA_DIR to the folder of its data (.dealflow in the project folder)."
    )


if __name__ == "__main__":
    main()
