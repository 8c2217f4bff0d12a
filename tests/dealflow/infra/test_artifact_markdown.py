"""Deal data in the Prefect artifacts is text: a title, a name or a comment renders as
typed and adds nothing to the page, neither a link nor an image, emphasis, a heading, a
quote, a table cell or HTML.

Each artifact template is rendered twice, once with a harmless word in every text field
and once with the hostile value there instead, and both are parsed as CommonMark with
GFM's tables (tests/markdown_view.py). The two must have the same structure, and the
hostile one must read back its value where the harmless one reads the word. GFM's
autolinks are checked as the Prefect UI's renderer (remark-gfm) finds them: in the text
after escapes are undone. tests/e2e/test_hostile_input.py looks at the UI itself."""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it.token import Token

from dealflow.infra.rendering import render
from dealflow.reports.matrix_words import raci_table
from dealflow.reports.tables import Link, Table
from models.matrix import load_matrix
from models.settings import PROJECT_ROOT
from tests.markdown_view import PARSER, WORD_JOINER

WORD = "Placeholder"
NOW = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
HOSTILE = [
    "Click https://evil.example/x",
    "see www.evil.example today",
    "HTTPS://EVIL.EXAMPLE",
    "ftp://files.evil.example/a",
    "mail billing@evil.example now",
    "mailto:billing@evil.example",
    "![img](http://x)",
    "[a](b)",
    "[a][ref]\n\n[ref]: http://evil.example",
    "<http://x>",
    "<a href='http://evil.example'>pay here</a>",
    "<img src=x onerror=alert(1)>",
    "*bold* **strong** _x_ __y__ ~~gone~~",
    "`code` and ``more``",
    "# heading",
    "> quote",
    "- item",
    "1. first",
    "&lt;script&gt; &amp; &#60; &copy;",
    "a | b | c",
    "line one\nline two\r\nthree\rfour",
    "===",
    "---",
    "    indented",
    "trailing backslash \\",
    "\\*not bold\\*",
    "[^1] footnote",
    "<!-- hidden -->",
    "x" * 5 + " :smile: $math$",
]

# What GFM's autolink literals link, as remark-gfm finds them in unescaped text (loosened:
# no look at the character before, Python's \w is wider than JavaScript's).
GFM_AUTOLINK = re.compile(r"(?i)(?:https?://|ftp://|www(?=\.))[-.\w]+|[-.\w+]+@[-\w]+(?:\.[-\w]+)+")


def deal_board(value: str) -> str:
    deal = SimpleNamespace(
        id="ACME-2026-014",
        title=value,
        customer_name=value,
        amount=Decimal("48000.00"),
        currency="EUR",
        team=value,
        sales_rep_name=value,
        stage="approval:manager",
        outcome=value,
        waiting_on=value,
        waiting_on_name=value,
        waiting_since=NOW,
        outcome_reason=value,
        matrix_version=value,
        revision=2,
    )
    gate = SimpleNamespace(
        gate=value,
        role=value,
        assignee_name=value,
        assignee_email=value,
        requested_at=NOW,
        decision=value,
        decided_by_name=value,
        decided_by=value,
        decided_at=NOW,
    )
    event = SimpleNamespace(at=NOW, stage=value, event=value, actor=value, comment=value)
    return render(
        "artifacts/deal.md",
        deal=deal,
        gates=[gate],
        events=[event],
        now=NOW,
        page_url="http://dealflow.example/deals/ACME-2026-014?key=abc",
    )


def report_tables(value: str) -> list[Table]:
    return [
        Table(
            title=value,
            headers=["deal", value],
            rows=[[Link(value, "http://dealflow.example/deals/D1?key=abc"), value]],
            note=value,
        )
    ]


def pipeline_board(value: str) -> str:
    return render(
        "artifacts/tables.md",
        title="Pipeline board",
        intro="As of now.",
        tables=report_tables(value),
    )


def weekly_report(value: str) -> str:
    period = SimpleNamespace(label="2026-03-02 to 2026-03-08", timezone="Europe/Berlin")
    return render(
        "artifacts/weekly.md",
        title="Dealflow pipeline review",
        period=period,
        previous=SimpleNamespace(label="2026-02-23 to 2026-03-01"),
        generated=NOW,
        tables=report_tables(value),
        images={},
    )


def payment_check(value: str) -> str:
    escalation = SimpleNamespace(describe=lambda: value)
    summary = SimpleNamespace(
        escalated=1,
        by_level={"reminder": 1},
        shown=[escalation],
        holds=[value, value],
        emails_sent=1,
        emails_queued=1,
        smtp_connections=1,
        unknown_teams={value},
    )
    rows = [
        {"currency": "EUR", "current": "1.00", "1-30": "0.00", "31-60": "0.00"}
        | {"61-90": "0.00", "90+": "0.00", "total": "1.00"}
    ]
    return render(
        "artifacts/payment_check.md", today=NOW.date(), rows=rows, summary=summary, closing=[value]
    )


MATRIX = load_matrix(PROJECT_ROOT / "config" / "matrix.yaml")


def deal_raci(value: str) -> str:
    raci = raci_table(MATRIX, "emea", sales_rep=value)
    return render("artifacts/tables.md", title="RACI", intro="", tables=[raci])


ARTIFACTS: dict[str, Callable[[str], str]] = {
    "deal board": deal_board,
    "deal RACI": deal_raci,
    "pipeline board": pipeline_board,
    "weekly report": weekly_report,
    "payment check": payment_check,
}


def structure(tokens: list[Token]) -> list[tuple[str, str, str]]:
    """The parsed document without its text: each element and where its links point."""
    shape = []
    for token in tokens:
        for part in [token, *(token.children or [])]:
            if part.type not in {"text", "softbreak"}:
                shape.append((part.type, part.tag, str(sorted(part.attrs.items()))))
    return shape


def texts(tokens: list[Token]) -> list[str]:
    """The text of each block (a paragraph, a heading, a table cell) as a reader sees it."""
    return [
        "".join(
            " " if c.type == "softbreak" else c.content
            for c in token.children or []
            if c.type in {"text", "code_inline", "softbreak"}
        )
        for token in tokens
        if token.type == "inline"
    ]


def shown(text: str) -> str:
    # Word joiners are invisible; whitespace runs and line breaks read as one space.
    return " ".join(text.replace(WORD_JOINER, "").split())


def check_reads_as_text(artifact: Callable[[str], str], value: str) -> None:
    harmless, hostile = PARSER.parse(artifact(WORD)), PARSER.parse(artifact(value))
    assert structure(hostile) == structure(harmless), f"{value!r} added or removed markup"
    expected = [shown(t.replace(WORD, value.strip())) for t in texts(harmless)]
    assert [shown(t) for t in texts(hostile)] == expected, f"{value!r} does not read back"
    linked = [m.group() for t in texts(hostile) for m in GFM_AUTOLINK.finditer(t)]
    assert not linked, f"GFM would link {linked} in the text of {value!r}"


@pytest.mark.parametrize("artifact", ARTIFACTS.values(), ids=ARTIFACTS.keys())
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_deal_data_reads_as_text_in_every_artifact(
    artifact: Callable[[str], str], value: str
) -> None:
    check_reads_as_text(artifact, value)


MARKUP = st.sampled_from(
    [
        *["http://", "https://", "www.", "@", ".example", "&amp;", "&#x41;", "<", ">", "\\"],
        *string.punctuation,
        *["\n", "\r", "\t", "    ", "\u00a0", "é", "字"],
    ]
)
TEXT = (
    st.lists(
        st.one_of(MARKUP, st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"])))
    )
    .map("".join)
    .filter(str.strip)
)


@settings(max_examples=150, deadline=None)
@given(value=TEXT, artifact=st.sampled_from(list(ARTIFACTS.values())))
def test_any_text_reads_as_text_in_the_artifacts(value: str, artifact: Any) -> None:
    check_reads_as_text(artifact, value)
