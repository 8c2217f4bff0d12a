"""The Prefect artifacts as people read them: their markdown parsed by a CommonMark parser
with GFM's tables and strikethrough (markdown-it-py, which comes with rich), so that tests
assert what the UI shows rather than how the markdown escapes it."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.token import Token

PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])
# Dealflow puts this invisible character into what GFM would make a link of.
WORD_JOINER = "\u2060"


def as_shown(markdown: str) -> str:
    """The text a reader sees: a line per heading, paragraph or table row (its cells
    between ``|``, as in the source), links as ``[text](url)``, images as
    ``![text](src)``, without escapes and word joiners."""
    lines: list[str] = []
    row: list[str] | None = None
    for token in PARSER.parse(markdown):
        if token.type == "tr_open":
            row = []
        elif token.type == "tr_close" and row is not None:
            lines.append("| " + " | ".join(row) + " |")
            row = None
        elif token.type == "inline":
            text = _inline(token.children or [])
            if row is None:
                lines.append(text)
            else:
                row.append(text)
    return "\n".join(lines).replace(WORD_JOINER, "")


def _inline(tokens: list[Token]) -> str:
    parts, targets = [], []
    for token in tokens:
        if token.type in {"text", "code_inline"}:
            parts.append(token.content)
        elif token.type in {"softbreak", "hardbreak"}:
            parts.append("\n")
        elif token.type == "link_open":
            targets.append(str(token.attrs["href"]))
            parts.append("[")
        elif token.type == "link_close":
            parts.append(f"]({targets.pop()})")
        elif token.type == "image":
            parts.append(f"![{token.content}]({token.attrs['src']})")
    return "".join(parts)
