"""The weekly report: the review measures of a period against the period before, as
tables and charts, rendered for the terminal, an HTML file, email and Prefect."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.rendering import N_, render
from dealflow.reports.charts import data_uri, weekly_charts
from dealflow.reports.period import ReportPeriod
from dealflow.reports.pipeline_figures import Figures, figures
from dealflow.reports.tables import Table
from dealflow.reports.weekly_tables import weekly_tables
from models.matrix import Matrix


@dataclass(frozen=True)
class WeeklyReport:
    period: ReportPeriod
    now: Figures
    before: Figures
    tables: list[Table]
    charts: dict[str, bytes]  # PNG by content id
    generated: dt.datetime

    @property
    def title(self) -> str:
        return N_("Dealflow pipeline review, %(period)s") % {"period": self.period.label}


def weekly_report(matrix: Matrix, period: ReportPeriod, *, charts: bool = True) -> WeeklyReport:
    with session_scope() as session:
        now = figures(session, matrix, period)
        before = figures(session, matrix, period.previous)
    return WeeklyReport(
        period=period,
        now=now,
        before=before,
        tables=weekly_tables(matrix, now, before),
        charts=weekly_charts(matrix, now, before) if charts else {},
        generated=utcnow(),
    )


def _context(report: WeeklyReport, image: Callable[[str, bytes], str]) -> dict[str, object]:
    return {
        "title": report.title,
        "period": report.period,
        "previous": report.period.previous,
        "generated": report.generated,
        "tables": report.tables,
        "images": {name: image(name, png) for name, png in report.charts.items()},
    }


def html_page(report: WeeklyReport) -> str:
    """A standalone HTML file: the charts inside it as data URIs."""
    return render("reports/weekly.html", **_context(report, lambda _name, png: data_uri(png)))


def markdown(report: WeeklyReport) -> str:
    """The Prefect artifact; its UI shows data-URI images in markdown."""
    return render("artifacts/weekly.md", **_context(report, lambda _name, png: data_uri(png)))


def email_context(report: WeeklyReport) -> dict[str, object]:
    """For the email templates: the charts are inline parts, referred to by content id."""
    return _context(report, lambda name, _png: f"cid:{name}")
