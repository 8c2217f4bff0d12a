"""Readable names for the runs of the scheduled flows, in place of Prefect's random ones
(``noble-mule``): the flow's name and the moment the run checks, which is its ``now``
parameter when given, else the current time (UTC). A flow that runs once a day is named
for the day (``payment-check-2026-12-02``); one that runs several times a day for the
minute (``sla-sweep-2026-12-02T07:15Z``). A deal's run is named ``deal-<id>``, and
``deal-<id>-r2`` for the run of its second revision.

Prefect asks for the name when the run starts, inside the run: the names read the run's
parameters from ``prefect.runtime``. A deployment's run may hand them over as they were
sent (an ISO 8601 string rather than a datetime); both read the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from prefect.runtime import flow_run

from dealflow.infra.clock import utcnow
from models import keys

RunName = Callable[[], str]


def checked_at(parameters: Mapping[str, Any]) -> dt.datetime:
    """The moment a run checks, in UTC: its ``now`` parameter, else the current time."""
    now = parameters.get("now")
    if isinstance(now, str):
        now = dt.datetime.fromisoformat(now)
    if not isinstance(now, dt.datetime):
        return utcnow()
    return now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now.astimezone(dt.UTC)


def day_name(flow: str, parameters: Mapping[str, Any]) -> str:
    """``<flow>-2026-12-02``: a run of a flow that runs once a day."""
    return f"{flow}-{checked_at(parameters):%Y-%m-%d}"


def minute_name(flow: str, parameters: Mapping[str, Any]) -> str:
    """``<flow>-2026-12-02T07:15Z``: a run of a flow that runs several times a day."""
    return f"{flow}-{checked_at(parameters):%Y-%m-%dT%H:%MZ}"


def weekly_report_name(parameters: Mapping[str, Any]) -> str:
    """``weekly-report-2026-11-30``, the day it runs; a run for a period it is given
    is named for that period: ``weekly-report-2026-03-02-to-2026-03-08``."""
    first, last = parameters.get("first"), parameters.get("last")
    if first is not None and last is not None:
        return f"weekly-report-{_day(first)}-to-{_day(last)}"
    return day_name("weekly-report", parameters)


def _day(value: object) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _from_runtime(name: Callable[[Mapping[str, Any]], str]) -> RunName:
    def run_name() -> str:
        return name(flow_run.parameters)

    return run_name


def by_day(flow: str) -> RunName:
    """The ``flow_run_name`` of a flow named ``flow`` that runs once a day."""
    return _from_runtime(lambda parameters: day_name(flow, parameters))


def by_minute(flow: str) -> RunName:
    """The ``flow_run_name`` of a flow named ``flow`` that runs several times a day."""
    return _from_runtime(lambda parameters: minute_name(flow, parameters))


weekly_report_run_name: RunName = _from_runtime(weekly_report_name)


def deal_name(parameters: Mapping[str, Any]) -> str:
    """``deal-ACME-2026-014``, or ``deal-ACME-2026-014-r2`` for the deal's revision 2."""
    return keys.deal_run_name(str(parameters["deal_id"]), int(parameters.get("revision") or 1))


deal_run_name: RunName = _from_runtime(deal_name)
