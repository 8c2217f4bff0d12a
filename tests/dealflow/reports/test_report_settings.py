"""The matrix's report section is checked like the rest; business hours counted in bulk
agree with the day-by-day calendar."""

from __future__ import annotations

import datetime as dt

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dealflow.reports.working_hours import WorkingHours
from models.matrix import MatrixError, load_matrix, parse_matrix
from models.settings import PROJECT_ROOT

DEFAULT = PROJECT_ROOT / "config" / "matrix.yaml"


def test_report_recipients_and_time_zone_are_checked_with_their_place() -> None:
    data = yaml.safe_load(DEFAULT.read_text())
    data["roles"]["auditor"] = "Auditor"
    data["reports"] = {
        "timezone": "Europe/Atlantis",
        "weekly_recipients": ["finance", "ceo", "auditor"],
    }
    try:
        parse_matrix(yaml.safe_dump(data), "matrix.yaml")
    except MatrixError as exc:
        message = str(exc)
    else:
        raise AssertionError("the matrix was accepted")
    assert "matrix.yaml: reports.timezone: unknown time zone 'Europe/Atlantis'" in message
    assert "matrix.yaml: reports.weekly_recipients[1]: unknown role 'ceo'" in message
    assert "matrix.yaml: reports.weekly_recipients[2]: nobody holds role 'auditor'" in message


def test_the_default_matrix_names_the_weekly_report_readers() -> None:
    reports = load_matrix(DEFAULT).reports
    assert reports.timezone == "Europe/Berlin"
    assert reports.weekly_recipients == ["head_of_sales", "sales_director", "finance"]


MOMENTS = st.datetimes(
    min_value=dt.datetime(2025, 12, 1), max_value=dt.datetime(2027, 2, 1), timezones=st.just(dt.UTC)
)
CLOCK = WorkingHours(load_matrix(DEFAULT).calendar("emea"))


@settings(max_examples=300, deadline=None)
@given(MOMENTS, MOMENTS)
def test_bulk_business_hours_agree_with_the_calendar(start: dt.datetime, end: dt.datetime) -> None:
    expected = CLOCK.calendar.working_time_between(start, end).total_seconds() / 3600
    assert abs(CLOCK.hours_between(start, end) - expected) < 1e-6
