"""The one place Dealflow reads the time, so that tests and SLA logic can move it."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def subtract_business_days(day: dt.date, count: int) -> dt.date:
    """The date ``count`` working days (Monday to Friday) before ``day``."""
    while count > 0:
        day -= dt.timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day
