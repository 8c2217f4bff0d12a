"""The sales rep's ``dealflow deal`` commands: submit a won deal (and a rejected one again,
revised), follow it, report the stage it waits at as done."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dealflow.cli.options import actor_option, fail, not_answered
from dealflow.infra.echo import echo
from models.settings import get_settings


def deal_submit(
    file: Annotated[
        Path,
        typer.Argument(metavar="DEAL_FILE", help="The won deal, as JSON or YAML (see examples/)."),
    ],
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


def deal_resubmit(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="DEAL_FILE",
            help="The rejected deal, changed, as JSON or YAML (the same deal_id).",
        ),
    ],
) -> None:
    """Submit a rejected deal again, changed, as its next revision: a new run, its approval
    route planned again, the approvers shown what changed (the same revision twice: same
    run). Refused unless the deal was rejected and something changed."""
    from dealflow.intake.submit import (
        IntakeError,
        OrchestratorUnavailable,
        load_deal_file,
        resubmit,
    )
    from models.matrix import MatrixError, load_matrix

    try:
        submission = resubmit(load_deal_file(file, load_matrix(get_settings().matrix_path)))
    except IntakeError as exc:
        raise fail(
            "The revision was not submitted:\n" + "\n".join(f"  {p}" for p in exc.problems)
        ) from exc
    except (OrchestratorUnavailable, MatrixError) as exc:
        raise fail(f"The revision was not started: {exc}") from exc
    typer.echo(
        f"Deal:     {submission.deal_id}, revision {submission.revision}"
        + ("" if submission.new_deal else " (already submitted)")
    )
    typer.echo(f"Flow run: {submission.flow_run_url}")
    typer.echo(f"Status:   dealflow deal status {submission.deal_id}")


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
    by: Annotated[str | None, actor_option("Who reports", default="the deal's sales rep")] = None,
) -> None:
    """Report the stage a deal waits at (lead screening, needs discovery, quote) as done."""
    import datetime as dt

    from dealflow.answers.stage_done import ReportError, report_stage
    from dealflow.infra.records import DealNotFound
    from models.stage_report import StageReport, grade_for

    try:
        day = dt.date.fromisoformat(visit_date) if visit_date else None
    except ValueError as exc:
        raise fail(f"--visit-date: not a date (YYYY-MM-DD): {echo(visit_date)}") from exc
    try:
        answered = report_stage(
            deal_id, score=score, visit_date=day, note=note, lost=lost, reported_by=by
        )
    except (ReportError, DealNotFound) as exc:
        raise fail(f"Nothing was recorded: {exc}") from exc
    report = answered.answer
    if isinstance(report, StageReport):
        grade = f", grade {grade_for(report.score)}" if report.score is not None else ""
        outcome = "closed as lost" if lost else "moves on"
        typer.echo(
            f"Recorded {report.stage.replace('_', ' ')} of {deal_id}{grade}; the deal {outcome}."
        )
        return
    stage = answered.earlier.what.replace("_", " ") if answered.earlier else ""
    raise not_answered(deal_id, answered, "a stage report", stage)


def register(deal_app: typer.Typer) -> None:
    deal_app.command("submit")(deal_submit)
    deal_app.command("resubmit")(deal_resubmit)
    deal_app.command("status")(deal_status)
    deal_app.command("report")(deal_report_stage)
