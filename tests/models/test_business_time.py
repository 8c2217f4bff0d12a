"""Business-time arithmetic: never outside working time, never on a holiday, monotonic."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.business_time import BusinessCalendar

BERLIN = BusinessCalendar(timezone="Europe/Berlin", country="DE")
NEW_YORK = BusinessCalendar(timezone="America/New_York", country="US")
SHANGHAI = BusinessCalendar(timezone="Asia/Shanghai", country="CN")
UTC = dt.UTC

moments = st.datetimes(
    min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2028, 12, 31), timezones=st.just(UTC)
)
durations = st.integers(min_value=0, max_value=200 * 60).map(lambda m: dt.timedelta(minutes=m))
calendars = st.sampled_from([BERLIN, NEW_YORK, SHANGHAI, BusinessCalendar()])


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


# China's State Council moves working days around its holidays (调休): in 2026 these
# weekend days are working days, and weekdays such as 20 and 23 February are days off.
CHINA_MAKE_UP_DAYS_2026 = [
    dt.date(2026, 1, 4),
    dt.date(2026, 2, 14),
    dt.date(2026, 2, 28),
    dt.date(2026, 5, 9),
    dt.date(2026, 9, 20),
    dt.date(2026, 10, 10),
]


@pytest.mark.parametrize("day", CHINA_MAKE_UP_DAYS_2026, ids=str)
def test_china_works_on_its_make_up_weekend_days(day: dt.date) -> None:
    assert day.weekday() >= 5
    assert SHANGHAI.is_business_day(day)
    assert not NEW_YORK.is_business_day(day), "only China's calendar moves them"


def test_china_rests_on_the_weekdays_it_swapped_for_them() -> None:
    for day in (dt.date(2026, 2, 20), dt.date(2026, 2, 23), dt.date(2026, 10, 7)):
        assert not SHANGHAI.is_business_day(day)
    assert SHANGHAI.on_or_after(dt.date(2026, 2, 20)) == dt.date(2026, 2, 24)


def test_business_time_in_china_counts_a_make_up_saturday() -> None:
    # Friday 13 February 2026, 16:00 in Shanghai; Saturday the 14th is a working day,
    # then the Spring Festival: nothing until Tuesday the 24th.
    friday = dt.datetime(2026, 2, 13, 16, 0, tzinfo=SHANGHAI.zone)
    due = SHANGHAI.add_business_hours(friday, dt.timedelta(hours=3))
    assert local(SHANGHAI, due) == dt.datetime(2026, 2, 14, 11, 0, tzinfo=SHANGHAI.zone)
    after_the_holiday = SHANGHAI.add_business_hours(friday, dt.timedelta(hours=10))
    assert local(SHANGHAI, after_the_holiday) == dt.datetime(
        2026, 2, 24, 10, 0, tzinfo=SHANGHAI.zone
    )
    assert SHANGHAI.add_business_days(dt.date(2026, 2, 13), 1) == dt.date(2026, 2, 14)
    assert SHANGHAI.add_business_days(dt.date(2026, 2, 13), 2) == dt.date(2026, 2, 24)
    assert SHANGHAI.add_business_days(dt.date(2026, 3, 2), -1) == dt.date(2026, 2, 28)
    assert SHANGHAI.on_or_after(dt.date(2026, 2, 14)) == dt.date(2026, 2, 14)
    # 14, 24, 25, 26, 27 and 28 February.
    assert SHANGHAI.business_days_between(dt.date(2026, 2, 13), dt.date(2026, 2, 28)) == 6
    saturday = dt.datetime(2026, 2, 14, 9, 0, tzinfo=SHANGHAI.zone)
    assert SHANGHAI.is_working_time(saturday + dt.timedelta(hours=1))
    assert SHANGHAI.working_time_between(friday, saturday + dt.timedelta(hours=2)) == (
        dt.timedelta(hours=3)
    )


def test_a_calendar_that_makes_no_sense_is_refused() -> None:
    with pytest.raises(ValueError, match="must start before it ends"):
        BusinessCalendar(day_start=dt.time(17), day_end=dt.time(9))
    with pytest.raises(Exception, match="Mars"):
        BusinessCalendar(timezone="Mars/Olympus")


def test_the_companys_own_days_win_over_the_countrys() -> None:
    national_day, make_up_saturday = dt.date(2026, 10, 1), dt.date(2026, 2, 14)
    company = BusinessCalendar(
        timezone="Asia/Shanghai",
        country="CN",
        days_off=frozenset({make_up_saturday, dt.date(2026, 12, 31)}),
        extra_working_days=frozenset({national_day, dt.date(2026, 12, 26)}),
    )
    assert company.is_business_day(national_day) and company.is_business_day(dt.date(2026, 12, 26))
    assert not company.is_business_day(make_up_saturday)
    assert not company.is_business_day(dt.date(2026, 12, 31))
    assert company.is_business_day(dt.date(2026, 2, 28)), "the other make-up Saturday stays"
    assert company.is_public_working_day(make_up_saturday)
    assert not company.is_public_working_day(national_day)


def test_a_year_without_the_countrys_published_schedule_is_named() -> None:
    assert SHANGHAI.missing_schedule(2026) is None
    # The holidays package has China's 2026 schedule, not yet 2027's or 2028's: there the
    # make-up weekend days would count as days off and the swapped weekdays as working.
    for year in (2027, 2028):
        reason = SHANGHAI.missing_schedule(year)
        assert reason is not None
        assert f"no published schedule of CN for {year}" in reason
        assert "moved working days up to 2026" in reason
    # Germany moves no working days: its holidays follow rules the package knows.
    assert BERLIN.missing_schedule(2028) is None
    assert "for 1991-2100 only" in (BERLIN.missing_schedule(2101) or "")
    assert BusinessCalendar().missing_schedule(2101) is None, "no country, no schedule"
