"""``dealflow matrix``: check a responsibility matrix file, show it, explain a deal's route."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dealflow.cli.options import fail
from models.settings import get_settings

matrix_app = typer.Typer(help="The responsibility matrix.", no_args_is_help=True)


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
