"""Answering a deal's waiting step from a link in an email (the signed contract, the
customer's acceptance): what every such page does alike. The link is checked for its
purpose and step before anything is read; a date is read as the form sends it; and each
outcome but "recorded" is told to the person in their language, with the status a
browser and a script both understand (503 to try again, 409 for nothing to do)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import HTMLResponse

from dealflow.answers.waiting_run import Earlier, Outcome, Why
from dealflow.infra.clock import utcnow
from dealflow.infra.links import LinkError, LinkProblem, Purpose, link_keys, verify
from dealflow.infra.words import Words
from web.pages import browser_language, message_page, reader_language

DEAL_GONE = (Words("Deal not found"), Words("This deal no longer exists in Dealflow."), 404)

LINK_PROBLEMS = {
    LinkProblem.MALFORMED: Words("It is malformed."),
    LinkProblem.FORGED: Words("It is forged."),
    LinkProblem.EXPIRED: Words("It is expired."),
}

DealStage = Callable[[str, str], Words]
"""Words about the deal (its id) at its stage (the stage's title)."""


@dataclass(frozen=True, kw_only=True)
class LinkPage:
    """Which link a page for a person of the deal's team takes, and what it says when
    the link cannot be used."""

    purpose: Purpose
    step: str  # the step the link must name (a waiting step's wait key)
    not_this_kind: Words  # "It is not a signing link."
    record_otherwise: Words  # how else to record it, once the link cannot be used
    not_recorded: Words  # the title of every page that recorded nothing
    renew: Callable[[str], Words] | None = None  # how operations mail a fresh link


@dataclass(frozen=True, kw_only=True)
class StepPage(LinkPage):
    """What one kind of page answering a waiting step says where the pages differ: what
    the step is called in each sentence."""

    already: Callable[[str, Earlier], Words]  # recorded before: by whom, when
    not_yet: DealStage  # the run is on its way to the step: try again
    not_waiting: DealStage  # the run waits for something else, or has ended


@dataclass(frozen=True)
class StepClaim:
    """Who the link is for, on which deal and run, and the language they read."""

    deal_id: str
    person: str
    run_id: str
    language: str


def claim_of(page: LinkPage, token: str, request: Request) -> StepClaim | HTMLResponse:
    """The link's claim, or the page saying why it cannot be used."""
    not_this_kind = (Words("This link is not valid"), page.not_this_kind, 403)
    try:
        claim = verify(token, link_keys(), utcnow(), page.purpose)
    except LinkError as exc:
        language = browser_language(request.headers)
        if exc.problem is LinkProblem.WRONG_PURPOSE:
            return message_page(*not_this_kind, language=language)
        said = [LINK_PROBLEMS[exc.problem], page.record_otherwise]
        if exc.problem is LinkProblem.EXPIRED and exc.claim is not None and page.renew:
            language = reader_language(exc.claim, request.headers)
            said.append(page.renew(exc.claim.deal_id))
        return message_page(
            Words("This link cannot be used"),
            said,
            410 if exc.problem is LinkProblem.EXPIRED else 403,
            language=language,
        )
    language = reader_language(claim, request.headers)
    if claim.gate != page.step:
        return message_page(*not_this_kind, language=language)
    return StepClaim(claim.deal_id, claim.approver, claim.run_id, language)


def form_date(value: str, language: str) -> dt.date | HTMLResponse | None:
    """The date a form field gives (None if left empty), or the page saying it is none."""
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return message_page(
            Words("Not a date"),
            Words("Give the date as YYYY-MM-DD (got %(given)r).", given=value),
            400,
            language=language,
        )


def not_answered(page: StepPage, deal_id: str, answered: Outcome, language: str) -> HTMLResponse:
    """The page for each outcome but RESUMED; Prefect's words go to the log."""
    if answered.earlier is not None:
        said = page.already(deal_id, answered.earlier)
        return message_page(page.not_recorded, said, 409, language=language)
    try_again = Words("Please try again")
    match answered.why:
        case Why.ON_ITS_WAY:
            said = page.not_yet(deal_id, answered.stage)
            return message_page(try_again, said, 503, language=language)
        case Why.CRASHED | Why.RESTARTING:
            said = Words(
                "This deal's workflow is being restarted. Nothing was recorded; try again "
                "in a few minutes."
            )
            return message_page(try_again, said, 503, language=language)
        case Why.UNREACHABLE:
            said = Words(
                "Dealflow cannot reach its workflow server right now. Nothing was "
                "recorded; try again in a minute."
            )
            return message_page(try_again, said, 503, language=language)
        case Why.REFUSED:
            said = Words(
                "The workflow server did not accept it. Nothing was recorded; operations can "
                "tell you why."
            )
        case Why.NO_RUN | Why.OTHER_RUN:
            said = Words(
                "This link does not belong to the current run of %(deal_id)s.", deal_id=deal_id
            )
        case Why.RUN_GONE:
            said = Words(
                "This deal's workflow run no longer exists. Nothing was recorded; ask operations."
            )
        case _:
            said = page.not_waiting(deal_id, answered.stage)
    return message_page(page.not_recorded, said, 409, language=language)
