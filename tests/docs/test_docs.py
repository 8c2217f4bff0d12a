"""The README and docs/*.md show only what exists: every `dealflow` command and option in
their code, every `make` target, every relative link and anchor, every file or module of
this repository they name in code. And the README fits two screens.

Fast: no stack, no network. Commands are looked up in the CLI's own command tree and
their ``--help`` is run in this process.
"""

from __future__ import annotations

import re
import shlex
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from dealflow.cli.main import app
from models.settings import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
PAGES = [README, *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 100

# The top-level folders whose files the docs may name (`dealflow/infra/links.py`), and
# the packages whose modules they may name (`dealflow.stack.local.Stack`).
PACKAGES = {"dealflow", "flows", "tasks", "models", "web"}
REPO_FOLDERS = PACKAGES | {
    "bench",
    "config",
    "docs",
    "examples",
    "harness",
    "migrations",
    "templates",
    "tests",
}
FILE_SUFFIXES = {"py", "db", "yaml", "yml", "json", "md", "csv", "html", "txt", "toml", "xlsx"}


@dataclass(frozen=True)
class Code:
    """A piece of code a page shows: a line of a fenced block, or an inline code span."""

    page: Path
    line: int
    text: str
    fenced: bool

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(PROJECT_ROOT)}:{self.line}"


@dataclass(frozen=True)
class Prose:
    """A paragraph outside fenced blocks, with its inline code spans blanked out."""

    page: Path
    line: int
    text: str


INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)


@cache
def parse(page: Path) -> tuple[list[Code], list[Prose], list[str]]:
    """The page's code, its prose paragraphs and its headings (outside fenced blocks)."""
    code: list[Code] = []
    prose: list[Prose] = []
    headings: list[str] = []
    paragraph: list[tuple[int, str]] = []

    def end_paragraph() -> None:
        if paragraph:
            first, text = paragraph[0][0], "\n".join(line for _, line in paragraph)
            for span in INLINE_CODE.finditer(text):
                line = first + text.count("\n", 0, span.start())
                code.append(Code(page, line, " ".join(span.group(2).split()), fenced=False))
            prose.append(Prose(page, first, INLINE_CODE.sub(" ", text)))
            paragraph.clear()

    fence: str | None = None
    continued = ""
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        marker = re.match(r"\s*(```+|~~~+)", line)
        if fence is not None:
            if marker and marker.group(1).startswith(fence):
                fence = None
            elif line.rstrip().endswith("\\"):  # a shell line continued on the next
                continued += line.rstrip()[:-1] + " "
            else:
                code.append(Code(page, number, continued + line, fenced=True))
                continued = ""
        elif marker:
            end_paragraph()
            fence = marker.group(1)
        elif not line.strip():
            end_paragraph()
        else:
            heading = re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", line)
            if heading:
                end_paragraph()
                headings.append(heading.group(2))
            else:
                paragraph.append((number, line))
    end_paragraph()
    return code, prose, headings


def shell_commands(text: str) -> list[list[str]]:
    """The simple commands in a line of shell, each as its words, without leading
    ``NAME=value`` assignments and comments."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:  # an unbalanced quote: not shell we can read
        return []
    commands: list[list[str]] = [[]]
    for word in words:
        if word and set(word) <= set("();<>|&"):
            commands.append([])
        elif commands[-1] or not re.fullmatch(r"[A-Za-z_]\w*=.*", word):
            commands[-1].append(word)
    return [command for command in commands if command]


def dealflow_arguments(command: list[str]) -> list[str] | None:
    """The arguments of a ``dealflow`` command (``.venv/bin/dealflow``, ``python -m
    dealflow``), or None for any other program."""
    program = command[0].rsplit("/", 1)[-1]
    if program == "dealflow":
        return command[1:]
    if re.fullmatch(r"python[\d.]*", program) and command[1:3] == ["-m", "dealflow"]:
        return command[3:]
    return None


def command_path(arguments: list[str]) -> tuple[str, ...]:
    """The sub-commands at the start of ``arguments``, down the CLI's command tree; a
    word where a sub-command must be that is none is kept, for ``--help`` to refuse."""
    path: list[str] = []
    command: Any = typer.main.get_command(app)
    for word in arguments:
        subcommands: dict[str, Any] | None = getattr(command, "commands", None)
        if subcommands is None or word.startswith("-"):  # not a group: its arguments
            break
        path.append(word)
        if word not in subcommands:
            break
        command = subcommands[word]
    return tuple(path)


OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def shown_commands() -> dict[tuple[str, ...], dict[str, list[str]]]:
    """Each sub-command path the docs show, with the options shown for it and where."""
    found: dict[tuple[str, ...], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for page in PAGES:
        for code in parse(page)[0]:
            for command in shell_commands(code.text):
                arguments = dealflow_arguments(command)
                if arguments is None:
                    continue
                path = command_path(arguments)
                found[path][""].append(code.where)
                for option in OPTION.findall(" ".join(arguments[len(path) :])):
                    found[path][option].append(code.where)
    return found


SHOWN = shown_commands()


def test_the_docs_show_dealflow_commands() -> None:
    """The collector finds the commands the pages are known to show."""
    assert ("deal", "submit") in SHOWN
    assert "--amount" in SHOWN[("payments", "record")]
    assert ("runs", "recover") in SHOWN  # from docs/deployment.md
    assert len(SHOWN) >= 15


@pytest.mark.parametrize("path", sorted(SHOWN), ids=lambda path: " ".join(path) or "dealflow")
def test_every_command_the_docs_show_exists_with_its_options(path: tuple[str, ...]) -> None:
    shown = SHOWN[path]
    result = CliRunner().invoke(
        app, [*path, "--help"], prog_name="dealflow", env={"COLUMNS": "200", "NO_COLOR": "1"}
    )
    command = " ".join(("dealflow", *path))
    assert result.exit_code == 0, (
        f"`{command}` (shown at {', '.join(shown[''])}) does not exist:\n{result.output}"
    )
    assert f"Usage: {command} " in result.output
    missing = {
        option: places
        for option, places in shown.items()
        if option and not re.search(rf"(?<![\w-]){option}(?![\w-])", result.output)
    }
    assert not missing, f"`{command} --help` does not know the options the docs show: {missing}"


def test_every_make_target_the_docs_show_exists() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", makefile, re.MULTILINE))
    shown: dict[str, list[str]] = defaultdict(list)
    for page in PAGES:
        for code in parse(page)[0]:
            for command in shell_commands(code.text):
                if command[0] == "make":
                    for word in command[1:]:
                        if not word.startswith("-") and "=" not in word:
                            shown[word].append(code.where)
    assert {"demo", "test"} <= shown.keys()
    assert not {t: w for t, w in shown.items() if t not in targets}, "no such make target"


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = defaultdict(int)
    for heading in parse(page)[2]:
        base = slug(heading)
        found.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)


def test_every_relative_link_points_at_a_file_and_heading_that_exist() -> None:
    broken: list[str] = []
    links = 0
    for page in PAGES:
        for paragraph in parse(page)[1]:
            for match in LINK.finditer(paragraph.text):
                target = match.group(1) or match.group(2)
                if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                    continue
                links += 1
                path, _, anchor = target.partition("#")
                file = (page.parent / path).resolve() if path else page
                line = paragraph.line + paragraph.text.count("\n", 0, match.start())
                where = f"{page.relative_to(PROJECT_ROOT)}:{line}: {target}"
                if not file.exists():
                    broken.append(f"{where}: no such file")
                elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
                    broken.append(f"{where}: no heading #{anchor}")
    assert links >= len(PAGES)
    assert not broken, "\n".join(broken)


def names_a_module(dotted: str) -> bool:
    """``dealflow.stack.local.Stack``: some prefix of two parts or more is a module."""
    parts = dotted.split(".")
    for end in range(len(parts), 1, -1):
        base = PROJECT_ROOT.joinpath(*parts[:end])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return True
    return False


def test_every_file_and_module_the_docs_name_exists() -> None:
    """No page names a file that moved (``dealflow/stack.py``, ``dealflow.measures``)."""
    missing: list[str] = []
    for page in PAGES:
        for code in parse(page)[0]:
            if code.fenced:
                continue
            name = code.text.split(":", 1)[0]  # flows/deal_handoff.py:deal_handoff
            if re.fullmatch(r"[\w.-]+(/[\w.-]*)+", name) and name.split("/")[0] in REPO_FOLDERS:
                if not (PROJECT_ROOT / name).exists():
                    missing.append(f"{code.where}: {name}")
            elif (
                re.fullmatch(r"\w+(\.\w+)+", name)
                and name.split(".")[0] in PACKAGES
                and name.rsplit(".", 1)[-1] not in FILE_SUFFIXES
                and not names_a_module(name)
            ):
                missing.append(f"{code.where}: {name}")
    assert not missing, "no such file or module:\n" + "\n".join(missing)


def test_the_readme_fits_two_screens() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines; move the details to a page under docs/"
    )


def test_the_old_spelling_payment_record_still_works_out_of_the_help() -> None:
    env = {"COLUMNS": "200", "NO_COLOR": "1"}
    old = CliRunner().invoke(app, ["payment", "record", "--help"], prog_name="dealflow", env=env)
    assert old.exit_code == 0 and "--invoice" in old.output
    listed = CliRunner().invoke(app, ["--help"], prog_name="dealflow", env=env).output
    assert re.search(r"^  payments\s", listed, re.M) and not re.search(
        r"^  payment\s", listed, re.M
    )
