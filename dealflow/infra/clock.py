"""The one place Dealflow reads the time, so that tests and SLA logic can move it."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
