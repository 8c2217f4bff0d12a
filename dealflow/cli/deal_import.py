"""``dealflow deal import FILE``: won deals from a CSV or Excel file, all rows checked first."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from dealflow.intake.bulk_import import ImportOutcome, ImportPlan
    from models.settings import Settings


def _say(message: str, *, err: bool = False, color: str | None = None) -> None:
    typer.secho(message, err=err, fg=color)


def _new_deals(count: int) -> str:
    return f"{count} new deal" + ("" if count == 1 else "s")


def import_deals(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="DEALS_FILE", help="Deals, one per row: .csv or .xlsx (see examples/deals.csv)."
        ),
    ],
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid", help="Submit the valid rows even when others are not (listed)."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and say what would be submitted.")
    ] = False,
) -> None:
    """Submit won deals from a file: every row is checked before any is submitted, and
    deals already submitted are skipped (importing the same file again submits nothing)."""
    from models.settings import get_settings

    settings = get_settings()
    plan = _checked(file, settings)
    bad_rows = len(plan.problems)
    if bad_rows:
        _invalid_rows(file, plan, skip_invalid)
    _say(
        f"{file}: {plan.rows} rows: {len(plan.new)} new, "
        f"{len(plan.already_submitted)} already submitted"
        + (f", {bad_rows} skipped" if bad_rows else "")
        + "."
    )
    if not plan.new:
        _say("Nothing new to submit.")
        raise typer.Exit(1 if bad_rows else 0)
    if dry_run:
        _say(f"Dry run: {_new_deals(len(plan.new))} would be submitted; nothing was.")
        raise typer.Exit(1 if bad_rows else 0)
    outcome = _submit(plan, settings)
    _report(plan, outcome)
    if outcome.problems or outcome.stopped or bad_rows:
        raise typer.Exit(1)


def _checked(file: Path, settings: Settings) -> ImportPlan:
    """Every row of ``file`` checked; nothing is imported when the file or the matrix is
    wrong."""
    from dealflow.intake.bulk_import import check_file
    from dealflow.intake.submit import IntakeError
    from models.matrix import MatrixError, load_matrix

    try:
        return check_file(file, load_matrix(settings.matrix_path))
    except IntakeError as exc:
        _say(
            "Nothing was imported:\n" + "\n".join(f"  {p}" for p in exc.problems),
            err=True,
            color="red",
        )
        raise typer.Exit(1) from exc
    except MatrixError as exc:
        _say(f"Nothing was imported: {exc}", err=True, color="red")
        raise typer.Exit(1) from exc


def _invalid_rows(file: Path, plan: ImportPlan, skip_invalid: bool) -> None:
    """List the rows that are not valid; stop unless they are to be skipped."""
    bad_rows = len(plan.problems)
    listed = "\n".join(f"  {p}" for p in plan.all_problems)
    if not skip_invalid:
        _say(
            f"{file}: {bad_rows} of {plan.rows} rows are not valid; nothing was submitted:\n"
            f"{listed}\nFix them and run the same command again"
            + (
                f", or pass --skip-invalid to submit the valid rows now ({_new_deals(len(plan.new))})."
                if plan.new
                else "."
            ),
            err=True,
            color="red",
        )
        raise typer.Exit(1)
    _say(
        f"{file}: {bad_rows} of {plan.rows} rows are not valid and are skipped:\n{listed}",
        err=True,
        color="yellow",
    )


def _submit(plan: ImportPlan, settings: Settings) -> ImportOutcome:
    """Submit the new deals with a progress bar, once the Prefect server answers."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from dealflow.intake.bulk_import import submit_new
    from dealflow.intake.submit import OrchestratorUnavailable, check_orchestrator

    try:
        check_orchestrator(settings)
    except OrchestratorUnavailable as exc:
        _say(f"Nothing was submitted: {exc}", err=True, color="red")
        raise typer.Exit(1) from exc
    progress = Progress(
        TextColumn("Submitting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
    )
    with progress:
        task = progress.add_task("", total=len(plan.new))
        return submit_new(
            plan,
            settings,
            on_submitted=lambda _line, s: progress.update(task, advance=1, description=s.deal_id),
        )


def _report(plan: ImportPlan, outcome: ImportOutcome) -> None:
    _say(f"Submitted {len(outcome.submitted)} of {_new_deals(len(plan.new))}:")
    for line, submission in outcome.submitted:
        _say(f"  line {line:<5} {submission.deal_id:<24} {submission.flow_run_url}")
    if outcome.submitted:
        _say("Follow one with: dealflow deal status DEAL_ID")
    if outcome.problems:
        _say(
            "Not submitted:\n" + "\n".join(f"  {p}" for p in outcome.problems),
            err=True,
            color="red",
        )
    if outcome.stopped:
        _say(
            f"The import stopped at {outcome.stopped}\nRun the same command again: the deals "
            "already submitted are skipped.",
            err=True,
            color="red",
        )
