"""Jinja2 for emails, pages and the Prefect artifacts: autoescaped HTML, markdown with
every value escaped (``md``), strict about missing values; in the reader's language.

Texts are marked for translation (``_("...")`` in templates, ``translate`` in code) and
translated from the gettext catalogs in ``locale/``: each language's ``messages.po`` is
read once, when first needed, so nothing compiled is kept or built. `make messages`
extracts the texts into ``locale/messages.pot`` and merges them into each catalog.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from decimal import Decimal
from functools import cache, partial
from io import BytesIO
from pathlib import Path

from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from models.language import ENGLISH
from models.money_words import cny_in_words
from models.settings import PROJECT_ROOT

LOCALE_DIR = PROJECT_ROOT / "locale"
# The CLDR locale whose formats each language's dates and money follow.
_FORMATS = {"zh_Hans": "zh_Hans_CN"}


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"


@cache
def translations(language: str) -> NullTranslations:
    """The translations into ``language`` (none for English, the texts' own language);
    fuzzy entries are left out, as gettext's compiler leaves them."""
    if language == ENGLISH:
        return NullTranslations()
    with catalog_path(language).open("rb") as po:
        catalog = read_po(po, locale=language)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def translate(language: str, message: str, **values: object) -> str:
    """``message`` in ``language``, its ``%(name)s`` placeholders filled from ``values``
    (for texts built in code, such as subjects)."""
    return translations(language).gettext(message) % values


def N_(message: str) -> str:
    """``message`` unchanged, marked for `make messages`: it is translated later, with
    ``translate``, where the reader's language is known."""
    return message


def money(amount: Decimal | float | str, currency: str, language: str = ENGLISH) -> str:
    """1,280,000.00 CNY in English; as the language writes it otherwise (¥1,280,000.00)."""
    if language == ENGLISH:
        return f"{Decimal(str(amount)):,.2f} {currency}"
    return format_currency(Decimal(str(amount)), currency, locale=_FORMATS[language])


def capitals(amount: Decimal | str) -> str:
    """A CNY amount in Chinese capital numerals (大写金额), as Chinese invoices write it."""
    return cny_in_words(Decimal(str(amount)))


def count(number: int, noun: str) -> str:
    """``number`` with ``noun`` in the singular or the plural: "1 day", "8 days"."""
    return f"{number} {noun}" if abs(number) == 1 else f"{number} {noun}s"


def when(value: dt.datetime | dt.date | None, language: str = ENGLISH) -> str:
    """2026-12-02 (09:00 UTC) in English; as the language writes it otherwise
    (2026年12月2日 09:00 UTC)."""
    if value is None:
        return "-"
    if language != ENGLISH:
        locale = _FORMATS[language]
        if isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC)
            day = format_date(value.date(), "long", locale=locale)
            return f"{day} {format_time(value, 'HH:mm', tzinfo=dt.UTC, locale=locale)} UTC"
        return format_date(value, "long", locale=locale)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


# CommonMark lets a backslash escape every ASCII punctuation character: escaped, none of
# them starts markup (emphasis, code, links, images, headings, tables, HTML, entities).
_PUNCTUATION = re.compile(f"([{re.escape(string.punctuation)}])")
_LINE_BREAK = re.compile(r"\r\n?|\n")
# GFM also links bare URLs and email addresses, and the Prefect UI's renderer (remark-gfm)
# finds them in the text after escapes are undone, so a backslash does not stop it. An
# invisible word joiner inside what it looks for ("http:", "www.", "x@y") does.
WORD_JOINER = "\u2060"
_AUTOLINK_START = re.compile(r"(?i)(?:https?|ftp)(?=:)|www(?=\.)|@")


def md(value: object) -> str:
    """``value`` as literal text in markdown, on one line: it renders as typed (plus
    invisible word joiners in what GFM would link) and can start no markup. Spaces at
    its ends are dropped: they would keep an emphasis around it from closing."""
    text = "" if value is None else str(value).strip()
    text = _AUTOLINK_START.sub(lambda found: found.group() + WORD_JOINER, text)
    return _LINE_BREAK.sub(" ", _PUNCTUATION.sub(r"\\\1", text))


@cache
def environment(language: str = ENGLISH) -> Environment:
    """The templates in ``language``: its translations, its dates and money."""
    env = Environment(
        loader=FileSystemLoader(PROJECT_ROOT / "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.globals["language"] = language
    env.filters["money"] = partial(money, language=language)
    env.filters["when"] = partial(when, language=language)
    env.filters["capitals"] = capitals
    env.filters["md"] = md
    return env


def compile_templates() -> None:
    """Read every language's translations and compile every template now, once: a
    process that forks flow runs (``dealflow worker``) does it for all of them."""
    from models.language import LANGUAGES

    for language in LANGUAGES:
        env = environment(language)
        for name in env.list_templates(extensions=["html", "txt", "md"]):
            env.get_template(name)
    # Babel's locale data, which formatting dates and money reads when first used.
    for language in LANGUAGES:
        money(Decimal("1"), "CNY", language)
        when(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), language)


def render(template: str, **context: object) -> str:
    return environment(ENGLISH).get_template(template).render(**context)


def render_in(language: str, template: str, **context: object) -> str:
    """``template`` in ``language``: its texts, dates and money."""
    return environment(language).get_template(template).render(**context)
