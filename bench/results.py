"""What every benchmark's section of bench/RESULTS.md is made of.

Each benchmark writes one section of that file and leaves the others alone. The sections
open alike (the command, the commit under test, the date and length of the run, the
machine and its load) so that figures from different runs can be told apart; the
tables and the percentiles are computed the same way in all of them.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from bench.script import PROJECT_ROOT, say

RESULTS_PATH = PROJECT_ROOT / "bench" / "RESULTS.md"
MIB = 1024 * 1024
# How a section names the commit when the checkout changed during the run.
CODE_CHANGE_ARROW = "{} -> {}"
CODE_CHANGE_SPELLED = "{} at the start, {} at the end"


def mib(value: float) -> str:
    return f"{value / MIB:.0f}"


def nearest_rank(values: Sequence[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(quantile * len(ordered))) - 1]


@dataclass(frozen=True)
class Stats:
    n: int
    median: float
    p95: float
    low: float
    high: float


def stats_of(values: Sequence[float]) -> Stats:
    ordered = sorted(values)
    return Stats(
        len(ordered),
        statistics.median(ordered),
        nearest_rank(ordered, 0.95),
        ordered[0],
        ordered[-1],
    )


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    meminfo = Path("/proc/meminfo").read_text()
    kib = next(int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal"))
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.machine(),
    )
    return (
        f"{len(os.sched_getaffinity(0))} CPUs (nproc; {model}), {kib / 1024**2:.1f} GiB RAM "
        f"(MemTotal), {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, Prefect {version('prefect')}"
    )


def checkout() -> str:
    """The commit under test, and whether files outside bench/ differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return commit + (" with uncommitted changes" if changed else "")


def command_line(script: str, argv: Sequence[str], make_target: str | None = None) -> str:
    """How the run was started; ``make_target`` names it when make ran the script with
    no arguments of its own (the Makefile's defaults)."""
    if make_target is not None and os.environ.get("MAKELEVEL") and not argv:
        return f"make {make_target}"
    return " ".join([".venv/bin/python", script, *argv])


@dataclass(frozen=True)
class RunRecord:
    """When, how long, on which commit and under what machine load a benchmark ran."""

    argv: list[str]
    started: dt.datetime
    seconds: float
    loads: tuple[float, float]  # 1-minute load average at the start and at the end
    code: tuple[str, str]  # ``checkout()`` at the start and at the end

    def header(
        self,
        script: str,
        make_target: str | None = None,
        code_change: str = CODE_CHANGE_ARROW,
        machine_note: str = "",
    ) -> str:
        """The lines every section opens with; ``machine_note`` goes after the machine."""
        command = command_line(script, self.argv, make_target)
        start, end = self.code
        commit = start if start == end else code_change.format(start, end)
        minutes, rest = divmod(round(self.seconds), 60)
        note = f"{machine_note}; " if machine_note else ""
        return (
            f"- Command: `{command}`\n"
            f"- Code: commit {commit}\n"
            f"- Date: {self.started:%Y-%m-%d %H:%M} UTC; the whole run took {minutes} min {rest:02d} s\n"
            f"- Machine: {machine()}; {note}1-minute load average {self.loads[0]:.2f} at the start, {self.loads[1]:.2f} at the end"
        )


class RunClock:
    """Started as a benchmark starts; ``stop`` gives the record of the run."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.started, self.began = dt.datetime.now(dt.UTC), time.monotonic()
        self.load_start, self.code_start = os.getloadavg()[0], checkout()

    def stop(self) -> RunRecord:
        return RunRecord(
            argv=self.argv,
            started=self.started,
            seconds=time.monotonic() - self.began,
            loads=(self.load_start, os.getloadavg()[0]),
            code=(self.code_start, checkout()),
        )


def write_results(section: str, title: str) -> None:
    """Replace the section called ``title`` of RESULTS.md, or add it; other sections stay."""
    if not RESULTS_PATH.exists():
        RESULTS_PATH.write_text("# Benchmark results\n\n" + section)
    else:
        lines = RESULTS_PATH.read_text().splitlines(keepends=True)
        start = next((i for i, line in enumerate(lines) if line.rstrip() == title), None)
        if start is None:
            text = "".join(lines).rstrip("\n") + "\n\n" + section
        else:
            end = next(
                (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                len(lines),
            )
            after = "".join(lines[end:])
            text = "".join(lines[:start]) + section + ("\n" + after if after else "")
        RESULTS_PATH.write_text(text)
    say(f"Written to {RESULTS_PATH.relative_to(PROJECT_ROOT)}")
