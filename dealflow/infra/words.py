"""What Dealflow says to a person, kept apart from the language it is read in.

Code that decides what to say (a decision's outcome, why a link cannot be used) builds
``Words``; the page or email that shows them translates them for its reader. The texts
are marked for `make messages` by ``Words(...)`` itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from dealflow.infra.rendering import translate, when
from models.language import CHINESE, ENGLISH


class Words:
    """A text with its ``%(name)s`` values: names, numbers, dates (written as the reader's
    language writes them) and other Words (translated too)."""

    __slots__ = ("text", "values")

    def __init__(self, text: str, **values: object) -> None:
        self.text = text
        self.values = values

    def in_language(self, language: str) -> str:
        return translate(
            language, self.text, **{name: _written(v, language) for name, v in self.values.items()}
        )

    def __str__(self) -> str:
        return self.in_language(ENGLISH)

    def __repr__(self) -> str:
        return f"Words({self.text!r}, **{self.values!r})"


def _written(value: object, language: str) -> object:
    if isinstance(value, Words):
        return value.in_language(language)
    if isinstance(value, dt.datetime | dt.date):
        return when(value, language)
    return value


def sentences(parts: Iterable[Words | str], language: str) -> str:
    """``parts`` read one after the other: Chinese needs no space between sentences."""
    written = [p.in_language(language) if isinstance(p, Words) else p for p in parts]
    return ("" if language == CHINESE else " ").join(w for w in written if w)
