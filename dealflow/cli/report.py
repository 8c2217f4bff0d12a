"""``dealflow report``: the weekly review measures of any period, in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from models.settings import get_settings


def print_tables(tables: list[object], title: str) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    from dealflow.reports.tables import Table

    console = Console()
    console.print(f"[bold]{title}[/bold]")
    for table in tables:
        assert isinstance(table, Table)
        shown = RichTable(title=table.title, title_justify="left", caption=table.note or None)
        for index, header in enumerate(table.headers):
            shown.add_column(header, justify="left" if index == 0 else "right")
        for row in table.rows:
            shown.add_row(*(str(cell) for cell in row))
        if not table.rows:
            shown.add_row("nothing in this period", *[""] * (len(table.headers) - 1))
        console.print(shown)


def report(
    first: Annotated[str, typer.Option("--from", help="First day of the period, YYYY-MM-DD.")],
    last: Annotated[str, typer.Option("--to", help="Last day of the period (included).")],
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the HTML report, charts inside.")
    ] = None,
    send: Annotated[
        bool,
        typer.Option("--send", help="Run the weekly-report flow: email it and write the artifact."),
    ] = False,
) -> None:
    """The review measures from --from to --to (days in the company's time zone, both
    included) against the period of as many days before."""
    from dealflow.reports.period import PeriodError, parse_period
    from dealflow.reports.weekly import html_page, weekly_report
    from models.matrix import MatrixError, load_matrix

    try:
        matrix = load_matrix(get_settings().matrix_path)
        period = parse_period(first, last, matrix.reports.timezone)
    except (PeriodError, MatrixError) as exc:
        typer.secho(f"No report: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    if html is not None and not html.parent.is_dir():
        typer.secho(f"--html: no folder {html.parent}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    result = weekly_report(matrix, period, charts=html is not None)
    print_tables(list(result.tables), result.title)
    if html is not None:
        html.write_text(html_page(result), encoding="utf-8")
        typer.echo(f"HTML report: {html}")
    if send:
        from flows.weekly_report import weekly_report as weekly_flow

        recipients = weekly_flow(first=period.first, last=period.last)
        typer.echo(f"Emailed to: {', '.join(recipients) or 'nobody (no recipients in the matrix)'}")
