"""How many days an invoice is overdue, as the dunning ladder counts them: calendar days,
or working days on the deal team's calendar, up to the team's own today."""

from __future__ import annotations

import datetime as dt

from models.finance import DunningLadder
from models.matrix import Matrix


class DaysOverdue:
    """Days overdue per team and due date, computed once per pair (there are few)."""

    def __init__(self, matrix: Matrix, ladder: DunningLadder, now: dt.datetime) -> None:
        self.matrix, self.ladder, self.now = matrix, ladder, now
        self._today: dict[str, dt.date] = {}
        self._days: dict[tuple[str, dt.date], int] = {}

    def today(self, team: str) -> dt.date:
        if team not in self._today:
            self._today[team] = self.now.astimezone(self.matrix.calendar(team).zone).date()
        return self._today[team]

    def __call__(self, team: str, due: dt.date) -> int | None:
        """Days ``due`` is overdue on ``team``'s calendar; None for a team the matrix
        does not know (its invoices are listed in the report instead of dunned)."""
        if team not in self.matrix.teams:
            return None
        if (team, due) not in self._days:
            today = self.today(team)
            self._days[(team, due)] = (
                self.matrix.calendar(team).business_days_between(due, today)
                if self.ladder.business_days
                else (today - due).days
            )
        return self._days[(team, due)]

    def latest_due_date(self) -> dt.date:
        """No invoice due after this date can have a level due yet, on any team."""
        first = self.ladder.earliest_days
        latest = dt.date.min
        for team in self.matrix.teams:  # an invoice of an unknown team is read and skipped
            today = self.today(team)
            if self.ladder.business_days:
                # -first business days ahead lie at most this many calendar days ahead
                reach = today + dt.timedelta(days=max(0, -first) * 3 + 7)
            else:
                reach = today - dt.timedelta(days=first)
            latest = max(latest, reach)
        return latest
