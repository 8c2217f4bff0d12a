"""The weekly-report flow: the handbook's review measures, by email and in Prefect."""

from __future__ import annotations

import datetime as dt

from prefect import flow

from dealflow.infra.clock import utcnow
from dealflow.reports.period import ReportPeriod, last_week, parse_period
from flows.run_names import weekly_report_run_name
from models.matrix import load_matrix
from models.settings import get_settings
from tasks.reports import email_weekly_report, publish_weekly_report, read_weekly_report


def report_period(first: dt.date | None, last: dt.date | None, now: dt.datetime) -> ReportPeriod:
    timezone = load_matrix(get_settings().matrix_path).reports.timezone
    if first is None and last is None:
        return last_week(now, timezone)
    if first is None or last is None:
        raise ValueError("give both the first and the last day of the period, or neither")
    return parse_period(first.isoformat(), last.isoformat(), timezone)


@flow(name="weekly-report", flow_run_name=weekly_report_run_name, persist_result=False)
def weekly_report(
    first: dt.date | None = None, last: dt.date | None = None, now: dt.datetime | None = None
) -> list[str]:
    """Compute the review measures from ``first`` to ``last`` (days in the company's
    time zone, both included; by default last week, Monday to Sunday) against the period
    of as many days before, email the HTML report with its charts to the roles the
    matrix names (``reports.weekly_recipients``), and write it as the markdown artifact
    ``weekly-report``.

    Waits: never. Runs every Monday morning (prefect.yaml, the local stack) and on
    demand (``dealflow report --send``).

    Touches: reads Dealflow's database; the outbox and SMTP (once per period, by the key
    ``report/weekly/<first>-<last>``); a Prefect artifact.
    """
    period = report_period(first, last, now or utcnow())
    report = read_weekly_report(period)
    publish_weekly_report(report)
    return email_weekly_report(report)
