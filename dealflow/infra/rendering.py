"""Jinja2 for emails and pages: autoescaped HTML, strict about missing values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import lru_cache

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from models.settings import PROJECT_ROOT


def money(amount: Decimal | float | str, currency: str) -> str:
    return f"{Decimal(str(amount)):,.2f} {currency}"


def when(value: dt.datetime | dt.date | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(PROJECT_ROOT / "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["when"] = when
    return env


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)
