"""Answering a deal's waiting run: one way for every answer from outside (an approver's
decision, the customer's acceptance, a settled deal, a stage reported done).

1. Find the deal's run and wait, a bounded while, until it is suspended under the step's
   key (or one of its attempt keys): the link that answers is mailed a moment before the
   run suspends, and a quick click waits that moment out instead of being refused.
2. Under the deal's row lock, record the answer once (idempotent by the caller's own key)
   and resume the run with it and its proof, in one transaction: if Prefect refuses,
   nothing is kept.
3. Say what happened as one ``Outcome``, which each page and command puts in its own words.

An answer recorded before is always reported as such, with who gave it and when, whatever
the run does meanwhile: it may be on its way to its next step because of that very answer,
and "not waiting" or "try again" would mislead whoever answered second.

Prefect is imported with this module: the web service pays for it at start, and the
commands import this module only when they answer.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import httpx
from prefect.exceptions import (
    FlowPauseTimeout,
    NotPausedError,
    ObjectNotFound,
    PrefectHTTPStatusError,
)
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from dealflow.infra.db import session_scope
from dealflow.infra.prefect_api import pause_state, resume_with_answer
from dealflow.infra.records import get_deal
from models.keys import waits_for
from models.settings import get_settings
from models.tables import Deal

log = logging.getLogger(__name__)

# A run in these states is on its way to a step (started, resumed, or scheduled again).
_ON_ITS_WAY = {"SCHEDULED", "PENDING", "RUNNING"}


class Answered(StrEnum):
    """What became of an answer."""

    RESUMED = "resumed"  # recorded, and the run goes on with it
    ALREADY_ANSWERED = "already-answered"  # recorded before (``Outcome.earlier``): nothing done
    NOT_WAITING = "not-waiting"  # the run does not wait for this answer: nothing recorded
    TRY_AGAIN = "try-again"  # not now (``Outcome.why``): nothing recorded
    NOT_FOUND = "not-found"  # no run to answer (``Outcome.why``): nothing recorded


class Why(StrEnum):
    """Why an answer was not taken, for the words each page and command chooses."""

    ELSEWHERE = "elsewhere"  # NOT_WAITING: the run waits for another step, or has ended
    REFUSED = "refused"  # NOT_WAITING: Prefect refused the answer (its words are logged)
    ON_ITS_WAY = "on-its-way"  # TRY_AGAIN: the run did not reach the step in time
    UNREACHABLE = "unreachable"  # TRY_AGAIN: Prefect's server or the database did not answer
    CRASHED = "crashed"  # TRY_AGAIN: the run crashed; the sla-sweep starts it again
    RESTARTING = "restarting"  # TRY_AGAIN: it died half-way through suspending; being restarted
    NO_RUN = "no-run"  # NOT_FOUND: the deal has no run yet
    OTHER_RUN = "other-run"  # NOT_FOUND: the answer names a run that is not the deal's
    RUN_GONE = "run-gone"  # NOT_FOUND: Prefect does not know the deal's run


@dataclass(frozen=True)
class Earlier:
    """An answer recorded before: who gave it, when, and what it was (say "approved")."""

    by: str
    at: dt.datetime | None
    what: str = ""


@dataclass(frozen=True)
class Outcome:
    kind: Answered
    why: Why | None = None
    earlier: Earlier | None = None  # ALREADY_ANSWERED
    answer: BaseModel | None = None  # RESUMED: what the run was resumed with
    state: str = ""  # the run's state when last read, lowercase ("paused", "completed")
    stage: str = ""  # the deal's stage when last read
    detail: str = ""  # what Prefect or the database said, for logs and the CLI


@dataclass(frozen=True)
class Patience:
    """How long to wait for a run on its way to the step, and how often to look. The
    clock and the sleep are injectable so that tests spend no wall time on it."""

    seconds: float
    poll: float = 0.2
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def configured(cls) -> Patience:
        return cls(get_settings().resume_wait_seconds)


Record = Callable[[Session, Deal], BaseModel]
"""Called under the deal's row lock when the answer is not recorded yet: checks what must
be checked at that moment, writes the answer (or nothing, where the answer is its own
record), and returns what the run is resumed with. Raising refuses: nothing is kept, and
the exception reaches the caller."""

Lookup = Callable[[Session, Deal], Earlier | None]
"""The answer to this step as recorded before, if it was."""


@dataclass(frozen=True)
class _Look:
    run: str | None
    stage: str
    earlier: Earlier | None


class _NotResumed(Exception):
    """Rolls the recording back; carries the outcome, or None to look at the run again."""

    def __init__(self, outcome: Outcome | None) -> None:
        self.outcome = outcome


def answer_waiting_run(
    deal_id: str,
    step: str,
    *,
    record: Record,
    earlier: Lookup,
    run_id: str | None = None,
    patience: Patience | None = None,
) -> Outcome:
    """Answer the deal's run waiting for ``step`` (a base key such as ``gate-legal``).

    ``run_id``: the run the answer was meant for (a link names it); None for the deal's
    current run. DealNotFound if there is no such deal; whatever ``record`` raises.
    """
    patience = patience or Patience.configured()
    deadline = patience.clock() + patience.seconds
    look = _Look(None, "", None)
    state = ""
    try:
        while True:
            look = _look(deal_id, earlier)
            if look.earlier is not None:
                return _already(look.earlier, look.stage, state)
            if look.run is None:
                return Outcome(Answered.NOT_FOUND, Why.NO_RUN, stage=look.stage)
            if run_id is not None and run_id != look.run:
                return Outcome(Answered.NOT_FOUND, Why.OTHER_RUN, stage=look.stage)
            state, key = pause_state(look.run)
            if state == "PAUSED" and waits_for(key, step):
                done = _record_and_resume(deal_id, look.run, step, record, earlier, patience)
                if done is not None:
                    return done
                # It stopped waiting between the look and the resume: look again.
            elif state == "CRASHED":
                return _outcome(Answered.TRY_AGAIN, Why.CRASHED, look, state)
            elif state not in _ON_ITS_WAY and not (state == "PAUSED" and key is None):
                return _outcome(Answered.NOT_WAITING, Why.ELSEWHERE, look, state)
            if patience.clock() >= deadline:
                return _outcome(Answered.TRY_AGAIN, Why.ON_ITS_WAY, look, state)
            patience.sleep(patience.poll)
    except ObjectNotFound:
        return _outcome(Answered.NOT_FOUND, Why.RUN_GONE, look, state)
    except (httpx.HTTPError, PrefectHTTPStatusError, OperationalError) as exc:
        log.warning("deal %s, %s: not answered, %s", deal_id, step, _said(exc))
        return _outcome(Answered.TRY_AGAIN, Why.UNREACHABLE, look, state, _said(exc))


def _look(deal_id: str, earlier: Lookup) -> _Look:
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        return _Look(deal.flow_run_id, deal.stage, earlier(session, deal))


def _record_and_resume(
    deal_id: str, run: str, step: str, record: Record, earlier: Lookup, patience: Patience
) -> Outcome | None:
    """Record the answer and resume the run, or neither; None if the run stopped waiting
    meanwhile (the caller looks again)."""
    resumed: BaseModel | None = None
    try:
        with session_scope() as session:
            # The row lock orders this answer with any other to the same deal (a second
            # click, the sla-sweep handing the gate to a delegate).
            deal = get_deal(session, deal_id, for_update=True)
            found = earlier(session, deal)
            if found is not None:
                return _already(found, deal.stage, "")
            if deal.flow_run_id != run:
                raise _NotResumed(None)
            answer = record(session, deal)
            session.flush()
            _resume(deal_id, run, step, answer, deal.stage)
            resumed = answer
    except _NotResumed as not_resumed:
        return not_resumed.outcome
    except DBAPIError as exc:
        if resumed is None:
            raise  # nothing was resumed: the caller's "try again" holds
        # Prefect took the answer but the commit failed: the run goes on with it, so it
        # is recorded afresh (idempotently) rather than lost.
        _record_again(deal_id, run, step, record, earlier, patience, exc)
    assert resumed is not None
    return Outcome(Answered.RESUMED, answer=resumed)


def _resume(deal_id: str, run: str, step: str, answer: BaseModel, stage: str) -> None:
    """Resume inside the recording's transaction; _NotResumed rolls the recording back."""
    try:
        resume_with_answer(run, step, answer)
    except NotPausedError as exc:
        raise _NotResumed(None) from exc
    except ObjectNotFound as exc:
        raise _NotResumed(Outcome(Answered.NOT_FOUND, Why.RUN_GONE, stage=stage)) from exc
    except (httpx.HTTPError, PrefectHTTPStatusError) as exc:
        log.warning("deal %s, %s: not answered, %s", deal_id, step, _said(exc))
        raise _NotResumed(
            Outcome(Answered.TRY_AGAIN, Why.UNREACHABLE, stage=stage, detail=_said(exc))
        ) from exc
    except (RuntimeError, FlowPauseTimeout) as exc:  # Prefect refused to resume the run
        # Prefect's words are for operations; whoever answered is told what to do.
        log.warning("deal %s, %s: Prefect refused the resume: %s", deal_id, step, exc)
        if "schema not found" in str(exc):
            # Its process died half-way through suspending: the sla-sweep starts it again.
            outcome = Outcome(Answered.TRY_AGAIN, Why.RESTARTING, stage=stage, detail=str(exc))
        else:
            outcome = Outcome(Answered.NOT_WAITING, Why.REFUSED, stage=stage, detail=str(exc))
        raise _NotResumed(outcome) from exc


def _record_again(
    deal_id: str,
    run: str,
    step: str,
    record: Record,
    earlier: Lookup,
    patience: Patience,
    failure: DBAPIError,
) -> None:
    for attempt in range(3):
        if attempt:
            patience.sleep(1.0)
        try:
            with session_scope() as session:
                deal = get_deal(session, deal_id, for_update=True)
                if earlier(session, deal) is None:
                    record(session, deal)
            log.warning(
                "deal %s, %s: recorded again after a failed commit (%s); run %s was resumed",
                deal_id,
                step,
                _said(failure),
                run,
            )
            return
        except DBAPIError as exc:
            failure = exc
    log.error(
        "deal %s, %s: run %s was resumed but the answer could not be recorded: %s",
        deal_id,
        step,
        run,
        _said(failure),
    )


def _already(found: Earlier, stage: str, state: str) -> Outcome:
    return Outcome(Answered.ALREADY_ANSWERED, earlier=found, stage=stage, state=state.lower())


def _outcome(kind: Answered, why: Why, look: _Look, state: str, detail: str = "") -> Outcome:
    return Outcome(kind, why, stage=look.stage, state=state.lower(), detail=detail)


def _said(exc: BaseException) -> str:
    """What an error says, one line (a database error's statement is left out)."""
    if isinstance(exc, DBAPIError):
        return f"{type(exc.orig).__name__}: {exc.orig}".splitlines()[0]
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
