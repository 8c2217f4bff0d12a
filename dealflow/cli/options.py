"""What the ``dealflow`` commands share: how they fail, and how they read a moved clock."""

from __future__ import annotations

import datetime as dt
import getpass
import os
from typing import TYPE_CHECKING, Any

import typer

from models.settings import get_settings

if TYPE_CHECKING:
    from dealflow.answers.waiting_run import Outcome


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def actor_option(what: str, default: str = "DEALFLOW_ACTOR, else your login name") -> Any:
    """``--actor WHO`` (``--by`` is its older spelling): who did what a command records."""
    return typer.Option("--actor", "--by", metavar="WHO", help=f"{what} (default: {default}).")


def actor(given: str | None) -> str:
    """Who records: ``--actor``, else the setting DEALFLOW_ACTOR, else the login name of
    the operating-system user running the command."""
    return (given or "").strip() or get_settings().actor.strip() or getpass.getuser()


def quiet_prefect_console() -> None:
    """A flow run here prints only its warnings and errors on the terminal, not Prefect's
    INFO lines ("Created flow run...", "Finished in state..."); every line still goes to
    the run's logs in the Prefect UI. Call it before Prefect is imported; a level set by
    the operator stands."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")


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


def not_answered(deal_id: str, answered: Outcome, waiting_for: str, answer: str = "") -> typer.Exit:
    """A command's failure for an answer that did not reach the deal's run (anything but
    RESUMED): what happened, and whether trying again can help. ``answer`` names what was
    recorded before (by default ``waiting_for``)."""
    from dealflow.answers.waiting_run import Why

    earlier, stage = answered.earlier, answered.stage
    if earlier is not None:
        at = f" at {earlier.at:%Y-%m-%d %H:%M} UTC" if earlier.at else ""
        why = f"{answer or waiting_for} of {deal_id} was already recorded by {earlier.by}{at}"
    else:
        match answered.why:
            case Why.ON_ITS_WAY:
                why = (
                    f"deal {deal_id} is not waiting for {waiting_for} yet (it is at {stage}); "
                    "try again in a minute"
                )
            case Why.CRASHED | Why.RESTARTING:
                why = (
                    f"the flow run of deal {deal_id} is being restarted; try again in a few minutes"
                )
            case Why.UNREACHABLE | Why.REFUSED:
                why = f"the Prefect server did not take it ({answered.detail})"
            case Why.NO_RUN | Why.OTHER_RUN:
                why = f"deal {deal_id} has no flow run yet: submit it again"
            case Why.RUN_GONE:
                why = f"the flow run of deal {deal_id} no longer exists; ask operations"
            case _:
                why = f"deal {deal_id} is not waiting for {waiting_for} (it is at {stage})"
    return fail(f"Nothing was recorded: {why}")
