"""A report's period: whole days in the company's calendar, first and last included."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from dealflow.infra.echo import echo
from dealflow.reports.measures import Period


class PeriodError(ValueError):
    """The period asked for is not one; the message says which date and why."""


@dataclass(frozen=True)
class ReportPeriod:
    first: dt.date
    last: dt.date
    timezone: str = "UTC"

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def utc(self) -> Period:
        """From midnight of the first day to midnight after the last, local time, in UTC."""
        zone = ZoneInfo(self.timezone)
        start = dt.datetime.combine(self.first, dt.time(0), zone).astimezone(dt.UTC)
        end = dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time(0), zone)
        return Period(start, end.astimezone(dt.UTC))

    @property
    def previous(self) -> ReportPeriod:
        """The period of as many days just before this one."""
        return ReportPeriod(
            self.first - dt.timedelta(days=self.days),
            self.first - dt.timedelta(days=1),
            self.timezone,
        )

    @property
    def label(self) -> str:
        return f"{self.first.isoformat()} to {self.last.isoformat()}"

    @property
    def key(self) -> str:
        return f"{self.first.isoformat()}-{self.last.isoformat()}"


def _day(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise PeriodError(f"{option}: not a date (YYYY-MM-DD): {echo(text)}") from None


def parse_period(first: str, last: str, timezone: str) -> ReportPeriod:
    """The period from ``--from`` to ``--to``, both days included."""
    start, end = _day(first, "--from"), _day(last, "--to")
    if end < start:
        raise PeriodError(f"--to ({end}) is before --from ({start}): the period would be empty")
    return ReportPeriod(start, end, timezone)


def last_week(now: dt.datetime, timezone: str) -> ReportPeriod:
    """Monday to Sunday of the week before the one ``now`` falls in, local time."""
    today = now.astimezone(ZoneInfo(timezone)).date()
    monday = today - dt.timedelta(days=today.weekday() + 7)
    return ReportPeriod(monday, monday + dt.timedelta(days=6), timezone)
