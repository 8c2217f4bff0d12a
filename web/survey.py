"""The customer's satisfaction survey, opened from the link in the email sent when the
deal's acceptance hands it to customer success: showing it changes nothing (mail
scanners open links); posting it records a score of 0-10 and a comment once. A score of
6 or less opens a complaint for customer success. The page speaks the customer's
language. No run waits for it: it is not a waiting step, so only the link checks are
shared with those pages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from dealflow.infra.clock import utcnow
from dealflow.infra.db import session_scope
from dealflow.infra.links import LinkError, LinkProblem, Purpose, link_keys, verify
from dealflow.infra.records import DealNotFound, get_deal, intake_of
from dealflow.infra.rendering import render_in
from dealflow.infra.words import Words
from models import keys
from models.matrix import MatrixError, load_matrix
from models.settings import get_settings
from models.tables import StageTransition
from tasks.satisfaction import (
    MAX_COMMENT,
    SatisfactionError,
    contact_name,
    parse_score,
    record_survey_answer,
)
from web.pages import browser_language, message_page
from web.step_links import DEAL_GONE, LINK_PROBLEMS

router = APIRouter()

NOT_A_SURVEY = (Words("This link is not valid"), Words("It is not a survey link."), 403)


@dataclass(frozen=True)
class SurveyClaim:
    """Whose survey the link is (the customer's contact), on which deal, in their language."""

    deal_id: str
    contact: str
    language: str


def customer_language(deal_id: str, headers: Mapping[str, str]) -> str:
    """The language of the deal's customer; the browser's when Dealflow cannot tell."""
    try:
        matrix = load_matrix(get_settings().matrix_path)
        with session_scope() as session:
            return matrix.customer_language(intake_of(get_deal(session, deal_id)))
    except (DealNotFound, MatrixError):
        return browser_language(headers)


def survey_claim(token: str, request: Request) -> SurveyClaim | HTMLResponse:
    """The link's claim, or the page saying why it cannot be used."""
    try:
        claim = verify(token, link_keys(), utcnow(), Purpose.SURVEY)
    except LinkError as exc:
        language = browser_language(request.headers)
        if exc.problem is LinkProblem.WRONG_PURPOSE:
            return message_page(*NOT_A_SURVEY, language=language)
        if exc.claim is not None:
            language = customer_language(exc.claim.deal_id, request.headers)
        return message_page(
            Words("This link cannot be used"),
            [
                LINK_PROBLEMS[exc.problem],
                Words("Nothing was recorded; reply to the survey email to tell us instead."),
            ],
            410 if exc.problem is LinkProblem.EXPIRED else 403,
            language=language,
        )
    language = customer_language(claim.deal_id, request.headers)
    if claim.gate != keys.SURVEY_STEP:
        return message_page(*NOT_A_SURVEY, language=language)
    return SurveyClaim(claim.deal_id, claim.approver, language)


@router.get("/survey/{token}", response_class=HTMLResponse)
def show_survey(token: str, request: Request) -> HTMLResponse:
    """The survey's question and a comment box; opening it changes nothing."""
    claim = survey_claim(token, request)
    if isinstance(claim, HTMLResponse):
        return claim
    try:
        with session_scope() as session:
            intake = intake_of(get_deal(session, claim.deal_id))
            done = session.scalar(
                select(StageTransition).where(
                    StageTransition.deal_id == claim.deal_id,
                    StageTransition.key == keys.SURVEY_ANSWERED,
                )
            )
            html = render_in(
                claim.language,
                "pages/survey.html",
                deal=intake,
                contact=contact_name(intake, claim.contact),
                done=done,
            )
    except DealNotFound:
        return message_page(*DEAL_GONE, language=claim.language)
    return HTMLResponse(html)


@router.post("/survey/{token}", response_class=HTMLResponse)
def post_survey(
    token: str,
    request: Request,
    score: Annotated[str, Form()] = "",  # any text: one that is no score is told so (400)
    comment: Annotated[str, Form(max_length=MAX_COMMENT)] = "",
) -> HTMLResponse:
    """Record the answer once; a second answer changes nothing (409)."""
    claim = survey_claim(token, request)
    if isinstance(claim, HTMLResponse):
        return claim
    language = claim.language
    not_recorded = Words("Answer not recorded")
    try:
        value = parse_score(score)
    except SatisfactionError:
        return message_page(
            not_recorded,
            Words("Choose a score from 0 to 10 (got %(given)r).", given=score[:20]),
            400,
            language=language,
        )
    try:
        answered = record_survey_answer(claim.deal_id, value, comment, claim.contact)
    except DealNotFound:
        return message_page(*DEAL_GONE, language=language)
    if not answered.new:
        return message_page(
            not_recorded,
            Words(
                "This survey was already answered by %(person)s on %(when)s; nothing was changed.",
                person=answered.by,
                when=answered.at,
            ),
            409,
            language=language,
        )
    said = [Words("Thank you: your answer is recorded.")]
    if answered.complaint_due is not None:
        said.append(
            Words(
                "We are sorry we fell short. Our customer success team will answer you by "
                "%(when)s.",
                when=answered.complaint_due,
            )
        )
    return message_page(Words("Thank you"), said, language=language)
