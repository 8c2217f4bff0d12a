"""Business-time arithmetic: never outside working time, never on a holiday, monotonic."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.business_time import BusinessCalendar

BERLIN = BusinessCalendar(timezone="Europe/Berlin", country="DE")
NEW_YORK = BusinessCalendar(timezone="America/New_York", country="US")
UTC = dt.UTC

moments = st.datetimes(
    min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2028, 12, 31), timezones=st.just(UTC)
)
durations = st.integers(min_value=0, max_value=200 * 60).map(lambda m: dt.timedelta(minutes=m))
calendars = st.sampled_from([BERLIN, NEW_YORK, BusinessCalendar()])


def local(calendar: BusinessCalendar, moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(calendar.zone)


@settings(max_examples=300, deadline=None)
@given(calendar=calendars, start=moments, duration=durations)
def test_adding_business_hours_lands_in_working_time(
    calendar: BusinessCalendar, start: dt.datetime, duration: dt.timedelta
) -> None:
    due = calendar.add_business_hours(start, duration)
    assert calendar.is_working_time(due), local(calendar, due)
    assert calendar.is_business_day(local(calendar, due).date()), "never on a holiday or weekend"
    assert due >= start


@settings(max_examples=300, deadline=None)
@given(calendar=calendars, start=moments, duration=durations, later=durations)
def test_adding_business_hours_is_monotonic(
    calendar: BusinessCalendar, start: dt.datetime, duration: dt.timedelta, later: dt.timedelta
) -> None:
    assert calendar.add_business_hours(start, duration) <= calendar.add_business_hours(
        start, duration + later
    )
    assert calendar.add_business_hours(start, duration) <= calendar.add_business_hours(
        start + later, duration
    )


@settings(max_examples=200, deadline=None)
@given(calendar=calendars, start=moments, duration=durations)
def test_the_working_time_between_start_and_due_is_the_duration(
    calendar: BusinessCalendar, start: dt.datetime, duration: dt.timedelta
) -> None:
    due = calendar.add_business_hours(start, duration)
    assert calendar.working_time_between(start, due) == duration


def test_friday_evening_before_a_holiday_weekend() -> None:
    # Thursday 2026-04-02, 16:00 in Berlin; Good Friday and Easter Monday are holidays.
    start = dt.datetime(2026, 4, 2, 16, 0, tzinfo=BERLIN.zone)
    due = BERLIN.add_business_hours(start, dt.timedelta(hours=2))
    assert local(BERLIN, due) == dt.datetime(2026, 4, 7, 10, 0, tzinfo=BERLIN.zone)


def test_business_days_skip_weekends_and_holidays() -> None:
    assert BERLIN.add_business_days(dt.date(2026, 12, 23), 2) == dt.date(2026, 12, 28)
    assert BERLIN.add_business_days(dt.date(2027, 1, 11), -5) == dt.date(2027, 1, 4)
    assert NEW_YORK.add_business_days(dt.date(2026, 11, 25), 1) == dt.date(2026, 11, 27)


def test_a_calendar_that_makes_no_sense_is_refused() -> None:
    with pytest.raises(ValueError, match="must start before it ends"):
        BusinessCalendar(day_start=dt.time(17), day_end=dt.time(9))
    with pytest.raises(Exception, match="Mars"):
        BusinessCalendar(timezone="Mars/Olympus")
