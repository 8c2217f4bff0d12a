"""The ``dealflow`` command: run the local stack, submit deals, follow them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dealflow.cli import finance as finance_commands
from dealflow.cli.deal_import import import_deals
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
matrix_app = typer.Typer(help="The responsibility matrix.", no_args_is_help=True)
stack_app = typer.Typer(help="The local stack on embedded defaults.", no_args_is_help=True)
sla_app = typer.Typer(help="Time limits: reminders and escalations.", no_args_is_help=True)
runs_app = typer.Typer(help="Dealflow's Prefect runs.", no_args_is_help=True)
app.add_typer(deal_app, name="deal")
app.add_typer(db_app, name="db")
app.add_typer(matrix_app, name="matrix")
app.add_typer(stack_app, name="stack")
app.add_typer(sla_app, name="sla")
app.add_typer(runs_app, name="runs")
finance_commands.register(app, deal_app)
deal_app.command("import")(import_deals)
app.command("report")(report)


@deal_app.command("submit")
def deal_submit(
    file: Annotated[Path, typer.Argument(help="The won deal, as JSON or YAML (see examples/).")],
) -> None:
    """Validate a won deal, store it and start its flow run (the same deal twice: same run)."""
    from dealflow.intake.submit import IntakeError, OrchestratorUnavailable, load_deal_file, submit
    from models.matrix import MatrixError, load_matrix

    try:
        submission = submit(load_deal_file(file, load_matrix(get_settings().matrix_path)))
    except IntakeError as exc:
        raise fail(
            "The deal was not submitted:\n" + "\n".join(f"  {p}" for p in exc.problems)
        ) from exc
    except (OrchestratorUnavailable, MatrixError) as exc:
        raise fail(f"The deal was not started: {exc}") from exc
    typer.echo(
        f"Deal:     {submission.deal_id}" + ("" if submission.new_deal else " (already submitted)")
    )
    typer.echo(f"Flow run: {submission.flow_run_url}")
    typer.echo(f"Status:   dealflow deal status {submission.deal_id}")


@deal_app.command("status")
def deal_status(
    deal_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show a deal's stage, who it waits on and since when, and its full timeline."""
    from dealflow.intake.status import DealNotFound, deal_report, format_report

    try:
        report = deal_report(deal_id)
    except DealNotFound as exc:
        raise fail(str(exc)) from exc
    typer.echo(json.dumps(report, indent=2, default=str) if as_json else format_report(report))


@deal_app.command("report")
def deal_report_stage(
    deal_id: str,
    score: Annotated[
        int | None, typer.Option(min=0, max=100, help="Lead score (lead screening).")
    ] = None,
    visit_date: Annotated[
        str | None, typer.Option(help="Date of the customer visit (needs discovery), YYYY-MM-DD.")
    ] = None,
    note: Annotated[str, typer.Option(help="What happened, for the timeline.")] = "",
    lost: Annotated[bool, typer.Option("--lost", help="The deal was lost: close it.")] = False,
    by: Annotated[
        str | None, typer.Option(help="Who reports (default: the deal's sales rep).")
    ] = None,
) -> None:
    """Report the stage a deal waits at (lead screening, needs discovery, quote) as done."""
    import datetime as dt

    import httpx
    from prefect.exceptions import NotPausedError

    from dealflow.answers.stage_done import ReportError, report_stage
    from dealflow.infra.records import DealNotFound
    from models.stage_report import grade_for

    try:
        day = dt.date.fromisoformat(visit_date) if visit_date else None
    except ValueError as exc:
        raise fail(f"--visit-date: not a date (YYYY-MM-DD): {echo(visit_date)}") from exc
    try:
        report = report_stage(
            deal_id, score=score, visit_date=day, note=note, lost=lost, reported_by=by
        )
    except (ReportError, DealNotFound) as exc:
        raise fail(f"Nothing was recorded: {exc}") from exc
    except NotPausedError as exc:
        raise fail(f"Nothing was recorded: deal {deal_id} stopped waiting just now") from exc
    except (httpx.HTTPError, RuntimeError) as exc:
        raise fail(f"Nothing was recorded: the Prefect server did not take it ({exc})") from exc
    grade = f", grade {grade_for(report.score)}" if report.score is not None else ""
    outcome = "closed as lost" if lost else "moves on"
    typer.echo(
        f"Recorded {report.stage.replace('_', ' ')} of {deal_id}{grade}; the deal {outcome}."
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate Dealflow's database to the newest schema."""
    from dealflow.infra.db import upgrade

    upgrade()
    typer.echo(f"Database is up to date: {get_settings().resolved_database_url.split('@')[-1]}")


@matrix_app.command("check")
def matrix_check(
    file: Annotated[
        Path | None, typer.Argument(help="Matrix file (default: the configured one).")
    ] = None,
) -> None:
    """Validate a responsibility matrix file; every problem is listed with its place."""
    from models.matrix import MatrixError, load_matrix

    try:
        matrix = load_matrix(file or get_settings().matrix_path)
    except MatrixError as exc:
        raise fail(str(exc)) from exc
    typer.echo(
        f"OK: matrix {matrix.label}, {len(matrix.people)} people, gates "
        + " -> ".join(g.name for g in matrix.gates)
    )


@matrix_app.command("show")
def matrix_show(
    file: Annotated[
        Path | None, typer.Argument(help="Matrix file (default: the configured one).")
    ] = None,
) -> None:
    """Print the matrix: gates, who holds each role per team, the routing rules."""
    from dealflow.reports.matrix_words import show
    from models.matrix import MatrixError, load_matrix

    try:
        typer.echo(show(load_matrix(file or get_settings().matrix_path)))
    except MatrixError as exc:
        raise fail(str(exc)) from exc


@matrix_app.command("explain")
def matrix_explain(
    deal_file: Annotated[Path, typer.Argument(help="A deal, as JSON or YAML.")],
    matrix_file: Annotated[Path | None, typer.Option("--matrix", help="Matrix file.")] = None,
) -> None:
    """Which gates a deal would need, who would approve each, and why."""
    from dealflow.intake.submit import IntakeError, load_deal_file
    from dealflow.reports.matrix_words import explain
    from models.matrix import MatrixError, load_matrix

    try:
        matrix = load_matrix(matrix_file or get_settings().matrix_path)
        typer.echo(explain(matrix, load_deal_file(deal_file)))
    except IntakeError as exc:
        raise fail("\n".join(exc.problems)) from exc
    except MatrixError as exc:
        raise fail(str(exc)) from exc


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


@stack_app.command("up")
def stack_up(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the stack keeps its data (default: DEALFLOW_DATA_DIR, else .dealflow)."
        ),
    ] = None,
    prefect_port: Annotated[int, typer.Option(help="Prefect server and UI.")] = 4200,
    web_port: Annotated[int, typer.Option(help="Dealflow's web service (approval pages).")] = 8000,
    smtp_port: Annotated[int, typer.Option(help="The mail catcher's SMTP server.")] = 1025,
    inbox_port: Annotated[int, typer.Option(help="The mail catcher's inbox page.")] = 8025,
) -> None:
    """Start Prefect, the deal runner, the web service and a mail catcher; Ctrl-C stops them."""
    import signal
    import time

    from dealflow.stack.config import StackConfig
    from dealflow.stack.local import Stack, StackError

    config = StackConfig(
        data_dir=data_dir or get_settings().data_dir,
        prefect_port=prefect_port,
        web_port=web_port,
        smtp_port=smtp_port,
        inbox_port=inbox_port,
    )
    stack = Stack(config)

    def stop_on_signal(signum: int, _frame: object) -> None:
        for name in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(name, signal.SIG_IGN)  # one stop at a time
        raise KeyboardInterrupt(signal.Signals(signum).name)

    # A closed terminal or a plain `kill` must stop the children too, not orphan them.
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGHUP, stop_on_signal)
    typer.echo("Starting the Dealflow stack (first start takes a minute)...")
    try:
        stack.start()
    except StackError as exc:
        raise fail(f"The stack did not start: {exc}") from exc
    except KeyboardInterrupt:
        stack.stop()
        raise typer.Exit(130) from None
    moved = prefect_port != 4200 or (data_dir is not None and data_dir != get_settings().data_dir)
    hint = (
        f"  export DEALFLOW_PREFECT_API_URL={config.prefect_api_url}"
        f" DEALFLOW_DATA_DIR={config.data_dir.resolve()}\n"
        if moved
        else ""
    )
    stack_settings = get_settings().model_copy(update={"data_dir": config.data_dir})
    stack_settings.finance_logins()  # the generated password exists before anyone needs it
    finance_login = (
        "logins from DEALFLOW_FINANCE_USERS"
        if stack_settings.finance_users
        else f"user finance, password in {config.data_dir.resolve() / 'finance-password'}"
    )
    for warning in stack.warnings:
        typer.echo(f"\nWarning: {warning}", err=True)
    typer.echo(
        f"\nDealflow is running; every schedule has its next run. Logs: {stack.logs}\n"
        f"  Prefect UI:   {config.prefect_api_url.removesuffix('/api')}\n"
        f"  Mail inbox:   {config.inbox_url}\n"
        f"  Web service:  {config.web_url}\n"
        f"  Finance page: {config.web_url}/finance ({finance_login})\n\n"
        "Submit a deal from another terminal, in this folder:\n"
        f"{hint}"
        "  .venv/bin/dealflow deal submit examples/acme.json\n\n"
        "Press Ctrl-C to stop."
    )
    try:
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(1)
    except KeyboardInterrupt:
        typer.echo("\nStopping...")
        stack.stop()
        return
    dead = [name for name, p in stack.processes.items() if p.poll() is not None]
    message = f"{', '.join(dead)} stopped unexpectedly:\n{stack.log_tail(dead[0])}"
    stack.stop()
    raise fail(message)


@app.command("deploy")
def deploy() -> None:
    """Register prefect.yaml's deployments on the Prefect server (`prefect deploy --all`)."""
    from dealflow.stack.deploy import deploy_all

    deploy_all()


@app.command("runner", hidden=True)
def runner(limit: Annotated[int, typer.Option(help="Flow runs at once.")] = 10) -> None:
    """Serve the deal-handoff deployment from this checkout (part of the stack)."""
    from dealflow.stack.runner import serve_deployments

    serve_deployments(limit)


@app.command("mailcatcher", hidden=True)
def mailcatcher(smtp_port: int = 1025, http_port: int = 8025, host: str = "127.0.0.1") -> None:
    """Receive all mail on SMTP and show it on an inbox page (part of the stack)."""
    from dealflow.stack.mailcatcher import run

    run(get_settings().data_dir.resolve() / "mail", host, smtp_port, http_port)


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
