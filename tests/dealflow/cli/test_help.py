"""`dealflow --help` and every group's and command's `--help` as a terminal shows them
(issue #15, item 13): commands in the order a user meets them, flags as plain flags,
arguments by a name that says what they are, help texts wrapped as paragraphs; and the
old `dealflow payment ...` spelling still works, with a note on stderr."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from typing import Any

import typer

from dealflow.cli.main import app
from tests.support import PROJECT_ROOT, dealflow

COLUMNS = 100
# Help texts are wrapped to the terminal's width less click's margin of two columns.
WRAP_WIDTH = COLUMNS - 2
ENV = {**os.environ, "COLUMNS": str(COLUMNS), "NO_COLOR": "1", "TERM": "dumb"}

# Every `--help` in one process (the real entry point, once per path): a subprocess each
# would start Python some forty times.
_ALL_HELP = """
import contextlib, io, json, sys
from dealflow.cli.main import main
texts = {}
for path in json.loads(sys.argv[1]):
    out = io.StringIO()
    sys.argv = ["dealflow", *path, "--help"]
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main()
    texts[" ".join(path)] = out.getvalue()
print(json.dumps(texts))
"""


def _paths() -> list[list[str]]:
    """Every group's and command's words, the hidden ones too."""
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


@cache
def all_help() -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-c", _ALL_HELP, json.dumps(_paths())],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=ENV,
        check=True,
    )
    texts: dict[str, str] = json.loads(result.stdout)
    return texts


def test_the_commands_are_listed_in_the_order_a_user_meets_them() -> None:
    text = dealflow("--help", env=ENV).stdout
    listed = re.findall(r"^[\s│]+([a-z][a-z-]*)\s{2,}\S", text.split("Commands")[1], re.M)
    assert listed == [
        "stack",
        "deploy",
        "worker",
        "deal",
        "payments",
        "invoice",
        "hold",
        "report",
        "sla",
        "runs",
        "prefect",
        "matrix",
        "db",
    ]


def test_no_help_shows_bool_or_braces_as_metavars() -> None:
    """Flags are plain (`--dry-run`, not `--dry-run <bool>`), values named like click names
    them (`--note TEXT`, not `--note <str>`), arguments without typer's braces."""
    texts = all_help()
    assert len(texts) > 30, sorted(texts)
    shown = {
        f"dealflow {path} --help: {line.strip()}"
        for path, text in texts.items()
        for line in text.splitlines()
        if "<bool>" in line or re.search(r"<[\w ]+>|\{\w+\}", line)
    }
    assert not shown, "\n".join(sorted(shown))


def test_arguments_are_named_for_what_they_are() -> None:
    texts = all_help()
    assert "Usage: dealflow deal submit [OPTIONS] DEAL_FILE" in texts["deal submit"]
    assert "Usage: dealflow deal import [OPTIONS] DEALS_FILE" in texts["deal import"]
    assert "Usage: dealflow payments import [OPTIONS] STATEMENT_FILE" in texts["payments import"]
    assert "Usage: dealflow invoice dispute [OPTIONS] INVOICE" in texts["invoice dispute"]
    flags = re.search(r"^\s+--second-payment\s{2,}This is", texts["payments record"], re.M)
    assert flags, texts["payments record"]


def _leaks(text: str) -> list[str]:
    """Lines that end before the terminal's edge though the next line goes on with the same
    text: a line break from a docstring, not from wrapping. Within a paragraph (the lines
    of a description, or an entry of a list and its deeper-indented continuation lines)
    the first word of each next line must not have fitted on the line before."""
    leaks = []
    entry_indent: int | None = None  # in a list (Options, Commands...): where entries start
    before = ""
    for raw in text.splitlines():
        # Rich's boxes and its column of required marks are no part of the text.
        line = re.sub(r"^(\s*)\*", lambda m: m.group(1) + " ", re.sub(r"[│╭╮╰╯─]", " ", raw))
        line = line.rstrip()
        indent = len(line) - len(line.lstrip())
        if re.fullmatch(r"\s*(Options|Arguments|Commands|\w[\w ]*:)", line):
            entry_indent, before = -1, ""
            continue
        if not line or not before or before.startswith("Usage:"):
            before = line
            continue
        if entry_indent is not None and (entry_indent < 0 or indent <= entry_indent):
            entry_indent, before = indent, line  # a new entry of the list
            continue
        indent_before = len(before) - len(before.lstrip())
        if entry_indent is None and indent != indent_before:
            before = line
            continue
        word = re.match(r"\S*?-(?=\w)|\S+", line.strip())
        assert word
        gap = 0 if before.endswith("-") else 1
        if len(before) + gap + len(word.group()) <= WRAP_WIDTH:
            leaks.append(f"{before.strip()!r} / {line.strip()!r}")
        before = line
    return leaks


def test_help_texts_wrap_as_paragraphs() -> None:
    texts = all_help()
    too_wide = [
        f"dealflow {path} --help: {line}"
        for path, text in texts.items()
        for line in text.splitlines()
        if len(line) > COLUMNS
    ]
    assert not too_wide, "\n".join(too_wide)
    leaks = [
        f"dealflow {path} --help: {leak}" for path, text in texts.items() for leak in _leaks(text)
    ]
    assert not leaks, "\n".join(leaks)


def test_a_command_listing_says_each_summary_whole() -> None:
    """Click lists a command by its docstring's first sentence: an "e.g." there would
    cut it short."""
    cut = [
        f"dealflow {path} --help: {line}"
        for path, text in all_help().items()
        for line in text.splitlines()
        if re.search(r"\b(e\.g|i\.e|etc)\.$", line.strip())
    ]
    assert not cut, "\n".join(cut)
    listing = " ".join(all_help()[""].split())
    assert (
        "prefect Prefect's CLI on Dealflow's Prefect server: everything after `prefect` goes"
        in (listing)
    )


def test_paragraphs_of_a_docstring_stay_apart() -> None:
    text = all_help()["payments check"]
    assert "\n\n  It acts for real, also with --now; --dry-run only says what it would do." in text


def test_the_old_spelling_payment_still_works_with_a_note() -> None:
    old = dealflow("payment", "record", "--invoice", "INV-NONE-1", "--amount", "x", check=False)
    assert old.returncode == 1
    note, *rest = old.stderr.splitlines()
    assert "deprecated" in note and "dealflow payments record" in note, old.stderr
    assert rest[0].startswith("--amount: not an amount: 'x'"), old.stderr
    for command in ("record", "import", "check"):
        shown = dealflow("payment", command, "--help", env=ENV)
        assert shown.stdout.startswith(f"Usage: dealflow payment {command} "), shown.stdout
        assert "deprecated" in shown.stderr
    listed = dealflow("--help", env=ENV).stdout
    assert re.search(r"^\s+payments\s", listed, re.M)
    assert not re.search(r"^\s+payment\s", listed, re.M)
