"""Working time of a team: weekdays, office hours and public holidays, in its time zone.

Time limits in the responsibility matrix are business hours or business days on such a
calendar, so a request sent on Friday evening before a holiday is not late on Monday.
Some countries move working days around their holidays (China's 调休): a weekend day
becomes a working day and a weekday a day off. Both follow the country's published
schedule as the ``holidays`` package has it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays


@dataclass(frozen=True)
class _CountryYear:
    days_off: frozenset[dt.date]  # public holidays, and weekdays given in exchange
    weekend_working_days: frozenset[dt.date]


@lru_cache(maxsize=256)
def _country_year(country: str, subdivision: str | None, year: int) -> _CountryYear:
    published = holidays.country_holidays(country, subdiv=subdivision, years=year)
    # weekend_workdays also holds other years' days (those declared at class level, and
    # those a shared set picked up in this process): keep this year's only.
    return _CountryYear(
        days_off=frozenset(published),
        weekend_working_days=frozenset(d for d in published.weekend_workdays if d.year == year),
    )


_NO_EXCEPTIONS = _CountryYear(days_off=frozenset(), weekend_working_days=frozenset())


# How far back a country's moved working days are looked for: one that moved some in
# these years publishes a schedule each year, and a year without one is not published yet.
_SCHEDULE_LOOK_BACK_YEARS = 10


@lru_cache(maxsize=256)
def _missing_schedule(country: str, subdivision: str | None, year: int) -> str | None:
    published = holidays.country_holidays(country, subdiv=subdivision, years=year)
    first, last = published.start_year, published.end_year
    if not first <= year <= last:
        return (
            f"no published schedule of {country} for {year}: the holidays package has "
            f"{country}'s public holidays for {first}-{last} only"
        )
    if not published:
        return (
            f"no published schedule of {country} for {year}: the holidays package lists "
            "no public holiday that year"
        )
    if _country_year(country, subdivision, year).weekend_working_days:
        return None
    moved_in = [
        earlier
        for earlier in range(max(first, year - _SCHEDULE_LOOK_BACK_YEARS), year)
        if _country_year(country, subdivision, earlier).weekend_working_days
    ]
    if not moved_in:
        return None
    return (
        f"no published schedule of {country} for {year}: the holidays package has "
        f"{country}'s moved working days up to {max(moved_in)} and none for {year}, so "
        "that year its make-up weekend days count as days off and the weekdays given in "
        "exchange as working days; update the holidays package once the schedule is "
        "published, or list the year's days in the team's days_off and extra_working_days"
    )


@dataclass(frozen=True)
class BusinessCalendar:
    timezone: str = "UTC"
    country: str | None = None  # public holidays of this country (ISO code), if any
    subdivision: str | None = None
    day_start: dt.time = dt.time(9)
    day_end: dt.time = dt.time(17)
    workdays: frozenset[int] = field(default_factory=lambda: frozenset(range(5)))  # Mon-Fri
    days_off: frozenset[dt.date] = frozenset()  # the company's own, on top of the country's
    extra_working_days: frozenset[dt.date] = frozenset()  # worked though the calendar rests
    # Each year's exceptions to the weekdays, country's and company's in one: business-time
    # arithmetic asks for days one by one, so a day costs one dict and one set lookup.
    _years: dict[int, _CountryYear] = field(
        default_factory=dict, init=False, compare=False, hash=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.day_start >= self.day_end:
            raise ValueError(
                f"working day must start before it ends: {self.day_start}-{self.day_end}"
            )
        ZoneInfo(self.timezone)  # an unknown zone fails here, not in a running deal

    def missing_schedule(self, year: int) -> str | None:
        """Why this calendar of ``year`` lacks its country's published schedule (the
        ``holidays`` package covers other years, or knows no holiday that year, or the
        country moves working days yearly and none are known for it), or None."""
        if self.country is None:
            return None
        return _missing_schedule(self.country, self.subdivision, year)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_business_day(self, day: dt.date) -> bool:
        year = self._years.get(day.year) or self._exceptions(day.year)
        if day.weekday() in self.workdays:
            return day not in year.days_off
        return day in year.weekend_working_days

    def _exceptions(self, year: int) -> _CountryYear:
        public = (
            _country_year(self.country, self.subdivision, year) if self.country else _NO_EXCEPTIONS
        )
        if self.days_off or self.extra_working_days:
            public = _CountryYear(
                days_off=(public.days_off | self.days_off) - self.extra_working_days,
                weekend_working_days=(public.weekend_working_days | self.extra_working_days)
                - self.days_off,
            )
        self._years[year] = public
        return public

    def is_public_working_day(self, day: dt.date) -> bool:
        """A working day by the weekdays and the country's schedule, before the
        company's own days off and extra working days."""
        if self.country is None:
            return day.weekday() in self.workdays
        country_year = _country_year(self.country, self.subdivision, day.year)
        if day.weekday() in self.workdays:
            return day not in country_year.days_off
        return day in country_year.weekend_working_days

    def _opening(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, self.day_start, self.zone)

    def _closing(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, self.day_end, self.zone)

    def is_working_time(self, moment: dt.datetime) -> bool:
        local = moment.astimezone(self.zone)
        return self.is_business_day(local.date()) and (
            self._opening(local.date()) <= local <= self._closing(local.date())
        )

    def next_working_moment(self, moment: dt.datetime) -> dt.datetime:
        """``moment`` if it is working time, else the next opening (in UTC)."""
        local = moment.astimezone(self.zone)
        day = local.date()
        if self.is_business_day(day) and local < self._closing(day):
            return max(local, self._opening(day)).astimezone(dt.UTC)
        day = self.add_business_days(day, 1)
        return self._opening(day).astimezone(dt.UTC)

    def add_business_hours(self, start: dt.datetime, duration: dt.timedelta) -> dt.datetime:
        """The moment ``duration`` of working time after ``start`` (in UTC)."""
        if duration < dt.timedelta(0):
            raise ValueError("duration must not be negative")
        moment = self.next_working_moment(start).astimezone(self.zone)
        remaining = duration
        while True:
            left_today = self._closing(moment.date()) - moment
            if remaining <= left_today:
                return (moment + remaining).astimezone(dt.UTC)
            remaining -= left_today
            moment = self._opening(self.add_business_days(moment.date(), 1))

    def add_business_days(self, day: dt.date, count: int) -> dt.date:
        """The business day ``count`` business days after ``day`` (before, if negative)."""
        step = dt.timedelta(days=1 if count >= 0 else -1)
        left = abs(count)
        while left:
            day += step
            if self.is_business_day(day):
                left -= 1
        return day

    def on_or_after(self, day: dt.date) -> dt.date:
        """``day`` if it is a business day, else the next one (a due date on a holiday)."""
        while not self.is_business_day(day):
            day += dt.timedelta(days=1)
        return day

    def business_days_between(self, start: dt.date, end: dt.date) -> int:
        """Business days after ``start`` up to and including ``end``; negative if ``end``
        is earlier (then: business days from ``end`` up to, not including, ``start``)."""
        if end < start:
            return -self.business_days_between(end, start)
        return sum(
            self.is_business_day(start + dt.timedelta(days=n))
            for n in range(1, (end - start).days + 1)
        )

    def working_time_between(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """How much working time lies between two moments (zero if ``end`` is earlier)."""
        total = dt.timedelta(0)
        moment = self.next_working_moment(start).astimezone(self.zone)
        end_local = end.astimezone(self.zone)
        while moment < end_local:
            closing = self._closing(moment.date())
            total += min(closing, end_local) - moment
            moment = self._opening(self.add_business_days(moment.date(), 1))
        return total
