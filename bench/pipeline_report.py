"""The pipeline-report over a large history on PostgreSQL: wall time and peak memory.

Writes a generated history (harness/history.py: deals with their timelines, approvals,
invoices and payments) into a fresh PostgreSQL database, then measures, each in a fresh
child process so that peak memory is its own:

* baseline: the same imports, and the raw reads alone (every timeline row of the last
  30 days' deals streamed, the waiting deals fetched), no measures: the I/O floor;
* board: what the flow computes (the board with the last 30 days' measures) and renders
  (the four markdown artifacts), without posting them;
* flow: the ``pipeline-report`` flow itself, posting its artifacts to a temporary Prefect
  server (``prefect_test_harness``; its start-up is not timed);
* weekly: the weekly report of the last 7 days against the 7 before, charts included.

    .venv/bin/python bench/pipeline_report.py [--deals 100000]
        [--server postgresql+psycopg://postgres@127.0.0.1:5432]

Prints the table and writes it to bench/RESULTS.md (only this benchmark's section).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_PATH = PROJECT_ROOT / "bench" / "RESULTS.md"
SECTION_TITLE = "## Pipeline report at scale (bench/pipeline_report.py)"
TODAY = dt.date(2026, 6, 30)
NOW = dt.datetime(2026, 6, 30, 12, tzinfo=dt.UTC)
MODES = ("baseline", "board", "flow", "weekly")

sys.path.insert(0, str(PROJECT_ROOT))


def _peak_mib() -> float:
    """This process's peak resident memory. (Not getrusage: Linux carries the parent's
    peak over into a child at exec, and the parent holds the generated history.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(mode: str) -> dict[str, Any]:
    """Run one measurement in this process; its figures."""
    from sqlalchemy import func, select

    from dealflow.infra.db import session_scope
    from dealflow.infra.rendering import render
    from dealflow.reports import board_queries, queries
    from dealflow.reports.board import board
    from dealflow.reports.board_tables import board_tables
    from dealflow.reports.period import ReportPeriod
    from dealflow.reports.weekly import weekly_report
    from models.matrix import load_matrix
    from models.settings import get_settings
    from models.tables import Deal

    matrix = load_matrix(get_settings().matrix_path)
    with session_scope() as session:
        session.scalar(select(func.count()).select_from(Deal))  # connected and warm
    before = _peak_mib()
    started = time.perf_counter()
    detail = ""
    if mode == "baseline":
        window = ReportPeriod(TODAY - dt.timedelta(days=29), TODAY).utc
        with session_scope() as session:
            rows = sum(1 for _ in queries.timelines(session, window))
            waiting = len(board_queries.waiting(session))
        detail = f"{rows} timeline rows, {waiting} waiting deals read"
    elif mode == "board":
        with session_scope() as session:
            shown = board(session, matrix, NOW)
        sections = board_tables(matrix, shown, lambda deal_id: f"/deals/{deal_id}")
        size = sum(
            len(render("artifacts/tables.md", title=key, intro="", tables=tables))
            for key, tables in sections.items()
        )
        detail = f"{len(shown.waiting)} waiting, {len(shown.invoices)} invoices listed; {size / 1024:.0f} KiB of markdown"
    elif mode == "flow":
        from prefect.testing.utilities import prefect_test_harness

        from flows.pipeline_report import pipeline_report

        with prefect_test_harness(server_startup_timeout=120):
            started = time.perf_counter()  # the temporary server's start is not timed
            keys = pipeline_report(now=NOW)
            finished = time.perf_counter()
        detail = f"artifacts {', '.join(keys)}"
    elif mode == "weekly":
        report = weekly_report(matrix, ReportPeriod(TODAY - dt.timedelta(days=6), TODAY, "UTC"))
        detail = f"{report.now.won} deals won in the week, {len(report.charts)} charts"
    if mode != "flow":
        finished = time.perf_counter()
    return {
        "mode": mode,
        "seconds": finished - started,
        "peak_mib": _peak_mib(),
        "start_mib": before,
        "detail": detail,
    }


def _database(server: str, name: str, *, drop_only: bool = False) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if not drop_only:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{server}/{name}"


def _machine() -> str:
    cpus = os.cpu_count()
    mem = next(
        (
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        "0",
    )
    from importlib.metadata import version

    return (
        f"{cpus} CPUs, {int(mem) / 1024 / 1024:.1f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, Prefect {version('prefect')}, SQLAlchemy {version('sqlalchemy')}; "
        f"load average {os.getloadavg()[0]:.2f} at the end"
    )


def _write_results(section: str) -> None:
    text = RESULTS_PATH.read_text() if RESULTS_PATH.exists() else "# Benchmark results\n"
    start = text.find(SECTION_TITLE)
    if start >= 0:
        following = text.find("\n## ", start + len(SECTION_TITLE))
        text = text[:start] + section + (text[following + 1 :] if following >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS_PATH.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--no-results", action="store_true", help="Do not write bench/RESULTS.md.")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return

    from dealflow.infra.db import get_engine, upgrade
    from harness.history import generate, store

    name = f"dealflow_bench_{os.getpid()}"
    url = _database(args.server, name)
    try:
        upgrade(url)
        began = time.perf_counter()
        history = generate(args.deals, TODAY)
        generated = time.perf_counter() - began
        store(get_engine(url), history)
        with get_engine(url).connect() as connection:  # as autovacuum would after a load
            connection.exec_driver_sql("COMMIT")
            connection.exec_driver_sql("ANALYZE")
        stored = time.perf_counter() - began - generated
        sizes = (
            f"{len(history.deals):,} deals, {len(history.transitions):,} timeline entries, "
            f"{len(history.approvals):,} approvals, {len(history.invoices):,} invoices, "
            f"{len(history.payments):,} payments"
        )
        del history
        print(f"{sizes}: generated in {generated:.1f} s, stored in {stored:.1f} s", flush=True)
        env = {**os.environ, "DEALFLOW_DATABASE_URL": url, "PYTHONPATH": str(PROJECT_ROOT)}
        results = []
        for mode in MODES:
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode],
                env=env,
                cwd=PROJECT_ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            results.append(result)
            print(
                f"{mode:<9} {result['seconds']:7.2f} s  peak {result['peak_mib']:7.0f} MiB  {result['detail']}",
                flush=True,
            )
    finally:
        get_engine(url).dispose()
        _database(args.server, name, drop_only=True)

    base = results[0]
    lines = [
        SECTION_TITLE,
        "",
        "The pipeline-report over a generated history on PostgreSQL (harness/history.py, deals",
        f"over the year before {TODAY}), each measurement in a fresh process. Peak memory is the",
        'process\'s maximum resident set (imports included); "+ over start" is what the work',
        "added to the process as it stood connected, before the work began. The baseline reads",
        "the same rows the board needs most (the 30 days' timelines, the waiting deals) and",
        "computes nothing.",
        "",
        f"- Command: `.venv/bin/python bench/pipeline_report.py --deals {args.deals}`",
        f"- Data: {sizes}",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {_machine()}",
        "",
        "| measurement | wall s | x baseline | peak MiB | + over start MiB | what |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['mode']} | {r['seconds']:.2f} | {r['seconds'] / base['seconds']:.1f} | "
            f"{r['peak_mib']:.0f} | {r['peak_mib'] - r['start_mib']:.0f} | {r['detail']} |"
        )
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_results:
        _write_results(section)


if __name__ == "__main__":
    main()
