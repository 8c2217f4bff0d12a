"""``dealflow matrix``: check a responsibility matrix file, show it, explain a deal's route."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from dealflow.cli.app import Group
from dealflow.cli.options import fail, moment_option
from dealflow.infra.clock import utcnow
from models.settings import get_settings

matrix_app = Group(help="The responsibility matrix.")


@matrix_app.command("check")
def matrix_check(
    file: Annotated[
        Path | None,
        typer.Argument(metavar="MATRIX_FILE", help="Matrix file (default: the configured one)."),
    ] = None,
    now: Annotated[
        str | None, typer.Option(help="Check the calendars as of this time (ISO 8601).")
    ] = None,
) -> None:
    """Validate a responsibility matrix file; every problem is listed with its place, and
    warnings (exit status 0) for what may be wrong with the teams' calendars in the
    years open deals reach."""
    from models.matrix import MatrixError, load_matrix
    from models.matrix_checks import calendar_warnings

    path = file or get_settings().matrix_path
    today = (moment_option(now) or utcnow()).date()
    try:
        matrix = load_matrix(path)
    except MatrixError as exc:
        raise fail(str(exc)) from exc
    typer.echo(
        f"OK: matrix {matrix.label}, {len(matrix.people)} people, gates "
        + " -> ".join(g.name for g in matrix.gates)
    )
    years, why = _years_open_deals_reach(today)
    typer.echo(f"Calendars checked for {years[0]}-{years[-1]} ({why})")
    for warning in calendar_warnings(matrix, years):
        typer.secho(f"warning: {path}: {warning}", fg=typer.colors.YELLOW, err=True)


def _years_open_deals_reach(today: dt.date) -> tuple[list[int], str]:
    """This year up to the latest a deal's time limits and due dates may fall in: the
    next year, or later when an open deal's delivery start or invoice is later."""
    from dealflow.infra.records import NoDatabase, latest_open_date

    try:
        latest = latest_open_date()
    except NoDatabase as exc:
        why = f"this year and the next; no database to read open deals from: {exc}"
        return [today.year, today.year + 1], why
    if latest is None or latest.year <= today.year + 1:
        why = "this year and the next" + (f"; open deals reach {latest}" if latest else "")
        return [today.year, today.year + 1], why
    return list(range(today.year, latest.year + 1)), f"open deals reach {latest}"


@matrix_app.command("show")
def matrix_show(
    file: Annotated[
        Path | None,
        typer.Argument(metavar="MATRIX_FILE", help="Matrix file (default: the configured one)."),
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
    deal_file: Annotated[
        Path, typer.Argument(metavar="DEAL_FILE", help="A deal, as JSON or YAML.")
    ],
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
