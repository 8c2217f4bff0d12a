"""What every benchmark script runs in: its error, its progress lines and how it stops.

A benchmark that cannot go on (PostgreSQL unreachable, a run that failed, a timeout)
raises ``BenchError`` and ends with its message, not a traceback; Ctrl-C, and SIGTERM
where a script routes it to ``raise_interrupt``, end it with exit code 130 once its
cleanup (stacks, databases, child processes) has run. ``run_main`` is each script's
``if __name__ == "__main__"``, so that all of them end the same way.

Nothing here imports Prefect or Dealflow: the load benchmarks must set the stack's
environment before either is first imported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""


def say(message: str) -> None:
    # Flushed at once: the benchmarks run for minutes, often with their output piped.
    print(message, flush=True)


def raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM stops the benchmark like Ctrl-C: its stack is stopped on the way out."""
    raise KeyboardInterrupt


def run_main(main: Callable[[Sequence[str]], None]) -> None:
    """Run a script's ``main`` with its command line's arguments and end it as above."""
    try:
        main(sys.argv[1:])
    except BenchError as exc:
        sys.exit(f"bench: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
