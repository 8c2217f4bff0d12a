"""The reports as tables of text: the same tables go to the terminal (rich), the HTML
report and email, and the Prefect artifacts. Here: the table, how its cells read, and
the stages' titles; the weekly report's tables and the board's are built in
``weekly_tables`` and ``board_tables``."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from dealflow.infra.rendering import N_, translate
from models.language import ENGLISH
from models.matrix import Matrix


@dataclass(frozen=True)
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


class Link(str):
    """A table cell that links somewhere (markdown renders it as a link)."""

    url: str

    def __new__(cls, text: str, url: str) -> Link:
        cell = super().__new__(cls, text)
        cell.url = url
        return cell


def number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def money(value: Decimal | None, currency: str = "") -> str:
    text = "-" if value is None else f"{value:,.2f}"
    return f"{text} {currency}".strip()


def change(now: float | None, before: float | None, digits: int = 1) -> str:
    if now is None or before is None:
        return "-"
    delta = now - before
    return f"{delta:+,.{digits}f}"


AFTER_APPROVAL = {
    "signing": N_("Approved, awaiting the signed contract"),
    "signed": N_("Contract signed"),
    "invoiced": N_("Invoiced"),
    "delivery": N_("Delivery, awaiting acceptance"),
    "accepted": N_("Accepted"),
    "awaiting_payment": N_("Awaiting payment"),
    "closed": N_("Closed, paid"),
}


def stage_title(matrix: Matrix, stage: str, language: str = ENGLISH) -> str:
    """The stage's title; a gate's and a matrix stage's in ``language`` if the matrix
    gives one."""
    if stage in AFTER_APPROVAL:
        return translate(language, AFTER_APPROVAL[stage])
    if stage.startswith("approval:"):
        return matrix.gate_title(stage.split(":", 1)[1], language)
    rule = next((s for s in matrix.stages if s.name == stage), None)
    return rule.title_in(language) if rule else stage.replace("_", " ").capitalize()
