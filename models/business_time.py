"""Working time of a team: weekdays, office hours and public holidays, in its time zone.

Time limits in the responsibility matrix are business hours or business days on such a
calendar, so a request sent on Friday evening before a holiday is not late on Monday.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays


@lru_cache(maxsize=256)
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year))


@dataclass(frozen=True)
class BusinessCalendar:
    timezone: str = "UTC"
    country: str | None = None  # public holidays of this country (ISO code), if any
    subdivision: str | None = None
    day_start: dt.time = dt.time(9)
    day_end: dt.time = dt.time(17)
    workdays: frozenset[int] = field(default_factory=lambda: frozenset(range(5)))  # Mon-Fri

    def __post_init__(self) -> None:
        if self.day_start >= self.day_end:
            raise ValueError(
                f"working day must start before it ends: {self.day_start}-{self.day_end}"
            )
        ZoneInfo(self.timezone)  # an unknown zone fails here, not in a running deal

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_business_day(self, day: dt.date) -> bool:
        if day.weekday() not in self.workdays:
            return False
        return self.country is None or day not in _public_holidays(
            self.country, self.subdivision, day.year
        )

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
