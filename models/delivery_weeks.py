"""Delivery weeks, counted from the kickoff: week ``k`` ends ``k`` periods of the matrix's
``progress_every_days`` after it. The rep owes one progress report per week, and the
sla-sweep looks at the weeks that have ended; both count them here, so they agree."""

from __future__ import annotations

import datetime as dt


def week_at(kickoff: dt.datetime, moment: dt.datetime, every_days: int) -> int:
    """The delivery week running at ``moment`` (1 from the kickoff on): the one a report
    recorded then is for."""
    return weeks_ended(kickoff, moment, every_days) + 1


def weeks_ended(kickoff: dt.datetime, moment: dt.datetime, every_days: int) -> int:
    """How many delivery weeks have ended at ``moment`` (0 before the first has)."""
    if moment < kickoff:
        return 0
    return (moment - kickoff) // dt.timedelta(days=every_days)


def week_end(kickoff: dt.datetime, week: int, every_days: int) -> dt.datetime:
    """When delivery week ``week`` ends: its report is missed after that."""
    return kickoff + dt.timedelta(days=every_days * week)
