"""What the ``dealflow`` commands share: how they fail, and how they read a moved clock."""

from __future__ import annotations

import datetime as dt

import typer


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def moment_option(now: str | None) -> dt.datetime | None:
    """The time given with ``--now`` (ISO 8601 with a time zone), or None for the real one."""
    if now is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(now)
    except ValueError as exc:
        raise fail(f"--now: not an ISO 8601 time: {now!r}") from exc
    if moment.tzinfo is None:
        raise fail(f"--now: give a time zone, e.g. {now}+00:00")
    return moment
