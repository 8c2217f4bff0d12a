"""Business time between many pairs of moments on one calendar, in constant time each.

``BusinessCalendar.working_time_between`` walks day by day, which is right for one gate
but slow for a report over a hundred thousand deals. Here each day's working seconds
are added up once into a running total, so the working time between two moments is the
difference of their totals. It agrees with ``working_time_between`` (tested).
"""

from __future__ import annotations

import datetime as dt

from models.business_time import BusinessCalendar

_EXTEND_DAYS = 366


class WorkingHours:
    def __init__(self, calendar: BusinessCalendar) -> None:
        self.calendar = calendar
        self._zone = calendar.zone
        self._origin: dt.date | None = None
        # _before[i]: working seconds of the days from the origin up to day origin+i, excluded
        self._before: list[float] = [0.0]

    def _day_seconds(self, day: dt.date) -> float:
        if not self.calendar.is_business_day(day):
            return 0.0
        opening = dt.datetime.combine(day, self.calendar.day_start, self._zone)
        closing = dt.datetime.combine(day, self.calendar.day_end, self._zone)
        return (closing - opening).total_seconds()

    def _seconds_before(self, day: dt.date) -> float:
        if self._origin is None or day < self._origin:
            # Rebuild from further back; rare (moments arrive roughly in order).
            last = self._origin + dt.timedelta(days=len(self._before) - 1) if self._origin else day
            self._origin = day - dt.timedelta(days=_EXTEND_DAYS)
            self._before = [0.0]
            self._extend_to(max(last, day))
        index = (day - self._origin).days
        if index >= len(self._before):
            self._extend_to(day + dt.timedelta(days=_EXTEND_DAYS))
        return self._before[index]

    def _extend_to(self, day: dt.date) -> None:
        assert self._origin is not None
        total = self._before[-1]
        current = self._origin + dt.timedelta(days=len(self._before) - 1)
        while current <= day:
            total += self._day_seconds(current)
            self._before.append(total)
            current += dt.timedelta(days=1)

    def total_at(self, moment: dt.datetime) -> float:
        """Working seconds from the index's origin up to ``moment``."""
        local = moment.astimezone(self._zone)
        day = local.date()
        done = self._seconds_before(day)
        if not self.calendar.is_business_day(day):
            return done
        opening = dt.datetime.combine(day, self.calendar.day_start, self._zone)
        closing = dt.datetime.combine(day, self.calendar.day_end, self._zone)
        return done + (min(max(local, opening), closing) - opening).total_seconds()

    def hours_between(self, start: dt.datetime, end: dt.datetime) -> float:
        """Business hours from ``start`` to ``end`` (zero if ``end`` is earlier)."""
        return max(0.0, self.total_at(end) - self.total_at(start)) / 3600
