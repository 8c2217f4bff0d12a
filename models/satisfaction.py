"""The customer's satisfaction score as the deal's timeline holds it: the survey's answer
is one timeline entry, written and read back only through these two functions."""

from __future__ import annotations

import re

_SCORE = re.compile(r"^Customer satisfaction (\d{1,2})/10 from ")


def survey_event(score: int, name: str) -> str:
    """The timeline's words for the answer ``score`` (0-10) given by ``name``; their comment
    is the entry's own comment, which the timeline shows beside them."""
    return f"Customer satisfaction {score}/10 from {name}"


def score_in(event: str) -> int | None:
    """The score of a survey answer's timeline entry; None for any other words."""
    found = _SCORE.match(event)
    return int(found.group(1)) if found else None
