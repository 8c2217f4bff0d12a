"""The pipeline's reports: read the measures, publish them as Prefect artifacts, email
the weekly one."""

from __future__ import annotations

import datetime as dt

from prefect.artifacts import create_markdown_artifact

from dealflow.infra.db import session_scope
from dealflow.infra.deal_links import deal_page_url
from dealflow.infra.rendering import render, translate, when
from dealflow.reports.board import Board, board
from dealflow.reports.board_tables import board_tables
from dealflow.reports.period import ReportPeriod
from dealflow.reports.weekly import WeeklyReport, email_context, markdown, weekly_report
from models import keys
from models.matrix import load_matrix
from models.settings import get_settings
from tasks.effect import effect_task
from tasks.email_message import OutgoingEmail
from tasks.mailer import deliver

WEEKLY_ARTIFACT = "weekly-report"
TITLES = {
    "pipeline-board": "Pipeline board: what is overdue, what waits on whom",
    "pipeline-approvals": "Pipeline: approval turnaround and rates",
    "pipeline-cycle-times": "Pipeline: cycle time per stage",
    "pipeline-cash": "Pipeline: invoice-to-cash, aging, collection",
}


@effect_task("read-pipeline")
def read_pipeline(now: dt.datetime) -> Board:
    """The pipeline as it stands at ``now``, with the measures of the last 30 days."""
    matrix = load_matrix(get_settings().matrix_path)
    with session_scope() as session:
        return board(session, matrix, now)


@effect_task("publish-pipeline-board")
def publish_pipeline_board(shown: Board) -> list[str]:
    """Rewrite the global keyed artifacts ops staff bookmark; their keys."""
    matrix = load_matrix(get_settings().matrix_path)
    links: dict[str, str] = {}

    def page_url(deal_id: str) -> str:
        if deal_id not in links:
            links[deal_id] = deal_page_url(
                deal_id
            )  # a live link, whatever ``now`` the board is for
        return links[deal_id]

    sections = board_tables(matrix, shown, page_url)
    for key, tables in sections.items():
        create_markdown_artifact(
            key=key,
            markdown=render(
                "artifacts/tables.md",
                title=TITLES[key],
                intro=f"As of {when(shown.now)}. Deal links open the deal's page in Dealflow's web service.",
                tables=tables,
            ),
            description=TITLES[key],
        )
    return list(sections)


@effect_task("read-weekly-report")
def read_weekly_report(period: ReportPeriod) -> WeeklyReport:
    """The review measures of ``period`` and the period before, with their charts."""
    return weekly_report(load_matrix(get_settings().matrix_path), period)


@effect_task("publish-weekly-report")
def publish_weekly_report(report: WeeklyReport) -> str:
    """The report as a markdown artifact: keyed ``weekly-report``, so each run adds a
    version and the latest is the newest report."""
    create_markdown_artifact(
        key=WEEKLY_ARTIFACT, markdown=markdown(report), description=report.title
    )
    return WEEKLY_ARTIFACT


@effect_task("email-weekly-report")
def email_weekly_report(report: WeeklyReport) -> list[str]:
    """Email the report once per period to everyone holding the matrix's report roles,
    one email per language its readers read."""
    matrix = load_matrix(get_settings().matrix_path)
    readers: dict[str, list[str]] = {}
    for role in matrix.reports.weekly_recipients:
        for person in matrix.people:
            if role in person.roles and all(person.email not in r for r in readers.values()):
                readers.setdefault(matrix.reader_language(person), []).append(person.email)
    for language, recipients in readers.items():
        deliver(
            OutgoingEmail(
                key=keys.weekly_report_mail(report.period.key, language),
                kind="weekly-report",
                deal_id=None,
                to=recipients,
                subject=translate(
                    language, "Dealflow pipeline review, %(period)s", period=report.period.label
                ),
                template="weekly_report",
                context=email_context(report),
                images=report.charts,
                language=language,
            )
        )
    return [email for recipients in readers.values() for email in recipients]
