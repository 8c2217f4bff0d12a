"""The web service's one message page: a title and a sentence, in the pages' style and
in the reader's language."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fastapi.responses import HTMLResponse

from dealflow.infra.db import session_scope
from dealflow.infra.links import LinkClaim
from dealflow.infra.records import DealNotFound, get_deal
from dealflow.infra.rendering import render_in
from dealflow.infra.words import Words, sentences
from models.language import ENGLISH, language_code
from models.matrix import MatrixError, load_matrix
from models.settings import get_settings

Said = Words | str | Sequence[Words | str]


def message_page(
    title: Said, message: Said, status: int = 200, *, language: str = ENGLISH, **extra: object
) -> HTMLResponse:
    """A page saying ``message`` under ``title``; Words are read in ``language``, plain
    strings (a person's own words) as they are."""
    html = render_in(
        language,
        "pages/message.html",
        title=_written(title, language),
        message=_written(message, language),
        **extra,
    )
    return HTMLResponse(html, status)


def _written(said: Said, language: str) -> str:
    if isinstance(said, str | Words):
        said = [said]
    return sentences(said, language)


def browser_language(headers: Mapping[str, str]) -> str:
    """The language of a page whose reader Dealflow does not know (a link it cannot
    trust, a deal that is gone): the first in the browser's Accept-Language that
    Dealflow writes, else English."""
    ranked: list[tuple[float, int, str]] = []
    for place, part in enumerate(headers.get("accept-language", "").split(",")):
        tag, _, weight = part.strip().partition(";q=")
        try:
            quality = float(weight) if weight else 1.0
        except ValueError:
            continue
        code = _code(tag) or _code(tag.split("-")[0])
        if code is not None and quality > 0:
            ranked.append((-quality, place, code))
    return min(ranked)[2] if ranked else ENGLISH


def _code(tag: str) -> str | None:
    try:
        return language_code(tag) if tag else None
    except ValueError:
        return None


def reader_language(claim: LinkClaim, headers: Mapping[str, str]) -> str:
    """The language of the person a signed link was issued to; the browser's when
    Dealflow cannot tell (the deal is gone, the matrix cannot be read)."""
    try:
        matrix = load_matrix(get_settings().matrix_path)
        with session_scope() as session:
            team = get_deal(session, claim.deal_id).team
    except (DealNotFound, MatrixError):
        return browser_language(headers)
    return matrix.language_of(claim.approver, team)
