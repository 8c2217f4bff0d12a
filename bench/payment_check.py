"""Payment check at scale: the dunning ladder over many open invoices, on PostgreSQL and SQLite.

For each database, the bench seeds a fresh Dealflow database (``dealflow.infra.db.upgrade``,
then bulk inserts: deals with the payload of examples/acme.json under new ids, their
open invoices, the outbox rows and timeline entries of their issue, some collection
holds), and then measures the payment check's work in a child process per measurement,
so that its peak RSS is its own:

1. the first check: every level due is claimed (the heavy run);
2. the same check again five minutes later: nothing new is due (the daily steady state);
3. the next day's check: a slice of invoices moves up a level.

A check is what the payment-check flow does, minus Prefect: ``resend_failed_mail``,
``apply_dunning_ladder``, ``close_paid_deals`` and ``compute_aging``, called through their
``.fn`` with the settings in the environment (``DEALFLOW_DATABASE_URL``, SMTP pointed at
a sink run by this script that counts messages and connections). No Prefect server is
involved: the flow adds a constant on top (one flow run, its task runs and two artifacts).
Each child counts the SQL statements it issues (a ``before_cursor_execute`` listener):
set-based work shows as statements that grow with batches, not with invoices.

Baseline, in the same run: the floor for the same work, a child that reads every
collectible invoice with its deal in one plain SELECT (streamed) and sends as many
pre-built small emails as the first check sent over one SMTP connection. With
``--naive-sample``, also the same ``apply_dunning_ladder`` one invoice at a time
(``tasks.dunning_batch.BATCH_SIZE`` set to 1 in its child: each invoice read, locked and
claimed in a transaction of its own, each person's digest per invoice) on a database of
that many invoices, extrapolated linearly to ``--invoices`` and labelled so. Every
child that measures ours calls Dealflow's own functions; only the baseline is written
here.

After each check the bench verifies: letters written == escalations reported, no
outbox row left unsent, every email key received by the sink exactly once over the
whole run, and as many messages received as the check reported sent.

    .venv/bin/python bench/payment_check.py [--invoices 100000] [--deals 20000]
        [--customers 1000] [--databases postgresql,sqlite] [--naive-sample 5000]

PostgreSQL: a database of its own (``dealflow_bench_<pid>``) on the server of
``DEALFLOW_BENCH_POSTGRES_URL`` (default: the test suite's server), dropped at the end.
Prints the tables and writes them to bench/RESULTS.md (only this benchmark's section).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECTION_TITLE = "## Payment check at scale (bench/payment_check.py)"
SCRIPT = "bench/payment_check.py"
EXAMPLE = PROJECT_ROOT / "examples" / "acme.json"
# Any database URL on the server: the bench creates and drops databases of its own beside it.
POSTGRES_SERVER = os.environ.get(
    "DEALFLOW_BENCH_POSTGRES_URL",
    os.environ.get(
        "DEALFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
).rsplit("/", 1)[0]
# 07:00 UTC is the same calendar day in Berlin and New York (the matrix's teams).
CHECK_AT = dt.datetime(2027, 3, 1, 7, 0, tzinfo=dt.UTC)
CHECKS = (
    ("first", "first check: every level due is claimed", dt.timedelta(0)),
    ("again", "same check 5 min later: nothing new due", dt.timedelta(minutes=5)),
    ("next-day", "next day's check: a slice moves up", dt.timedelta(days=1)),
)
CHUNK = 5000  # rows per bulk INSERT while seeding
REPS_PER_TEAM = 8
TEAMS = {"emea": ("EUR", "DE", "GmbH"), "nam": ("USD", "US", "Inc.")}

# Days overdue at CHECK_AT (negative: not due yet) per window, with each window's share
# of invoices. Late payers (one customer in ten) are the only ones with invoices 30 days
# or more overdue: the collections level puts its customer on hold, and in real ledgers a
# long-overdue invoice belongs to a customer who pays late in general.
WINDOWS = (  # (name, first day, last day)
    ("not due yet", -45, -4),
    ("friendly", -3, 0),
    ("reminder", 1, 6),
    ("rep-and-finance", 7, 14),
    ("manager", 15, 29),
    ("collections", 30, 120),
)
SHARES = {
    "prompt": (0.55, 0.06, 0.12, 0.15, 0.12, 0.0),
    "late": (0.30, 0.05, 0.10, 0.15, 0.15, 0.25),
}
LATE_PAYERS = 0.10
DISPUTED = 0.03  # of invoices: out of the ladder
PARTIALLY_PAID = 0.04  # of invoices: in the ladder with a smaller balance
ON_HOLD = 0.02  # of customers: on collections hold before the run (out of the ladder)

# bench/ is no installed package: it is imported from the checkout, after this.
# ruff: noqa: E402
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.results import CODE_CHANGE_SPELLED, RunClock, RunRecord, table, write_results
from bench.scratch_databases import create_databases, drop_databases
from bench.script import BenchError, raise_interrupt, run_main, say
from harness.ports import free_port

# --------------------------------------------------------------------------- seeding


@dataclass
class SeedReport:
    deals: int = 0
    invoices: int = 0
    customers: int = 0
    on_hold: int = 0
    by_window: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), ROUND_HALF_UP)


def _split(total: Decimal, parts: int) -> list[Decimal]:
    each = _money(total / parts)
    return [each] * (parts - 1) + [total - each * (parts - 1)]


def _schedule(parts: int) -> list[dict[str, str]]:
    percents = _split(Decimal(100), parts)
    milestones = ["signing", "kickoff"] + ["acceptance"] * max(0, parts - 2)
    return [
        {"label": f"Installment {n} of {parts}", "percent": str(p), "milestone": milestones[n - 1]}
        for n, p in enumerate(percents, 1)
    ]


def seed(url: str, invoices: int, deals: int, customers: int, rng: random.Random) -> SeedReport:
    """``deals`` deals waiting for payment with ``invoices`` open invoices between them."""
    import sqlalchemy as sa

    from dealflow.infra.db import upgrade
    from dealflow.intake.submit import payload_hash
    from models.deal import DealIntake
    from models.tables import CollectionHold, Deal, Invoice, SentMessage, StageTransition

    began = time.monotonic()
    upgrade(url)
    template = json.loads(EXAMPLE.read_text())
    created = CHECK_AT - dt.timedelta(days=150)
    teams = list(TEAMS)
    people = [
        (team, f"Customer {n:04d} {TEAMS[team][2]}", f"ap@customer{n:04d}.example")
        for n, team in ((n, teams[n % len(teams)]) for n in range(customers))
    ]
    late = set(rng.sample(range(customers), round(customers * LATE_PAYERS)))
    held = rng.sample(range(customers), round(customers * ON_HOLD))
    report = SeedReport(deals=deals, invoices=invoices, customers=customers, on_hold=len(held))
    engine = sa.create_engine(url)
    deal_rows: list[dict[str, Any]] = []
    invoice_rows: list[dict[str, Any]] = []
    outbox_rows: list[dict[str, Any]] = []
    timeline_rows: list[dict[str, Any]] = []

    def flush(connection: sa.Connection, final: bool = False) -> None:
        if len(invoice_rows) < CHUNK and not final:
            return
        for model, rows in (
            (Deal, deal_rows),
            (Invoice, invoice_rows),
            (StageTransition, timeline_rows),
            (SentMessage, outbox_rows),
        ):
            if rows:
                connection.execute(sa.insert(model), rows)
                rows.clear()

    with engine.begin() as connection:
        for index in range(deals):
            customer = rng.randrange(customers)
            team, name, billing = people[customer]
            currency, country, _suffix = TEAMS[team]
            rep = rng.randrange(REPS_PER_TEAM)
            units = rng.randrange(10, 400)
            count = invoices // deals + (1 if index < invoices % deals else 0)
            deal_id = f"BENCH-{index:06d}"
            data = {
                **template,
                "deal_id": deal_id,
                "team": team,
                "currency": currency,
                "customer": {
                    **template["customer"],
                    "name": name,
                    "country": country,
                    "billing_contact": {
                        **template["customer"]["billing_contact"],
                        "email": billing,
                    },
                },
                "sales_rep": {
                    "name": f"Rep {team.upper()} {rep}",
                    "email": f"rep{rep}.{team}@example.com",
                },
                "line_items": [
                    {**template["line_items"][0], "quantity": units},
                    {**template["line_items"][1], "quantity": units},
                    template["line_items"][2],
                ],
                "payment_terms": {"net_days": 30, "schedule": _schedule(count)},
            }
            total = Decimal(units) * (Decimal("310.00") + Decimal("96.00")) + Decimal("8500.00")
            data["amount"] = str(
                _money(total * (100 - Decimal(template["discount_percent"])) / 100)
            )
            intake = DealIntake.model_validate(data)
            deal_rows.append(
                {
                    "id": deal_id,
                    "title": intake.title,
                    "team": team,
                    "customer_name": name,
                    "amount": intake.amount,
                    "currency": currency,
                    "sales_rep_email": intake.sales_rep.email,
                    "sales_rep_name": intake.sales_rep.name,
                    "payload": intake.model_dump(mode="json"),
                    "payload_hash": payload_hash(intake),
                    "stage": "awaiting_payment",
                    "flow_run_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "matrix_version": "2026.11-default",
                    "created_at": created,
                    "updated_at": created,
                }
            )
            for key, stage, event in (
                ("submitted", "submitted", "Won deal submitted"),
                ("gate/manager/approved", "approval", "Approved by the sales manager"),
                (
                    "awaiting-payment",
                    "awaiting_payment",
                    "All invoices issued; waiting for payment",
                ),
            ):
                timeline_rows.append(
                    {
                        "deal_id": deal_id,
                        "key": key,
                        "stage": stage,
                        "event": event,
                        "actor": "dealflow",
                        "comment": "",
                        "at": created,
                    }
                )
            shares = SHARES["late" if customer in late else "prompt"]
            for sequence, amount in enumerate(_split(intake.amount, count), 1):
                window, low, high = rng.choices(WINDOWS, weights=shares)[0]
                due = CHECK_AT.date() - dt.timedelta(days=rng.randint(low, high))
                status, paid, reason = "open", Decimal(0), None
                roll = rng.random()
                if roll < DISPUTED:
                    status, reason = "disputed", "Quantities do not match the delivery note"
                elif roll < DISPUTED + PARTIALLY_PAID:
                    status, paid = "partially_paid", _money(amount * Decimal(rng.uniform(0.2, 0.8)))
                report.by_window[window if status != "disputed" else "disputed"] += 1
                report.by_status[status] += 1
                number = f"INV-{deal_id}-{sequence:02d}"
                invoice_rows.append(
                    {
                        "deal_id": deal_id,
                        "number": number,
                        "sequence": sequence,
                        "label": f"Installment {sequence} of {count}",
                        "milestone": "signing",
                        "amount": amount,
                        "currency": currency,
                        "issue_date": due - dt.timedelta(days=30),
                        "due_date": due,
                        "status": status,
                        "billing_email": billing,
                        "created_at": created,
                        "customer_name": name,
                        "paid_amount": paid,
                        "dunning_rank": 0,
                        "dispute_reason": reason,
                    }
                )
                key = f"deal/{deal_id}/invoice/{number}"
                outbox_rows.append(
                    {
                        "key": key,
                        "deal_id": deal_id,
                        "kind": "invoice",
                        "recipients": [billing],
                        "cc": ["finance@example.com"],
                        "subject": f"Invoice {number} for {intake.title}",
                        "message_id": f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@example.com>",
                        "status": "sent",
                        "attempts": 1,
                        "message": f"Subject: Invoice {number}\n\n" + "Invoice text. " * 60,
                        "created_at": created,
                        "sent_at": created,
                    }
                )
            flush(connection)
        flush(connection, final=True)
        holds = [
            {
                "customer_name": people[n][1],
                "reason": "Placed by finance: payment plan under negotiation",
                "placed_by": "finance",
                "placed_at": created,
                "cleared_at": None,
                "cleared_by": None,
            }
            for n in held
        ]
        if holds:
            connection.execute(sa.insert(CollectionHold), holds)
    if url.startswith("postgresql"):
        # A live database has statistics; a freshly loaded one gets them here.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()
    report.seconds = time.monotonic() - began
    return report


# --------------------------------------------------------------------------- SMTP sink


class Sink:
    """Counts messages and connections, and which outbox keys arrived how often."""

    KEY_HEADER = b"\nX-Dealflow-Key: "

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.connections = 0
        self.messages = 0
        self.keys: Counter[str] = Counter()  # over the whole run

    def connected(self) -> None:
        with self._lock:
            self.connections += 1

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or b""
        head = content.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n")
        start = head.find(self.KEY_HEADER)
        key = None
        if start >= 0:
            start += len(self.KEY_HEADER)
            key = head[start : head.find(b"\n", start) if b"\n" in head[start:] else None].decode()
        with self._lock:
            self.messages += 1
            if key is not None:
                self.keys[key] += 1
        return "250 OK"

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.messages, self.connections


def start_sink(sink: Sink) -> Any:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    class CountingSMTP(SMTP):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            sink.connected()

    class CountingController(Controller):
        def factory(self) -> SMTP:
            return CountingSMTP(self.handler, **self.SMTP_kwargs)

    controller = CountingController(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller


# --------------------------------------------------------------------------- children


def _memory_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def _count_statements(counts: Counter[str]) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "before_cursor_execute")
    def _count(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
    ) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        counts[verb] += 1
        counts["parameter sets"] += len(parameters) if executemany else 1


def child_check(now: dt.datetime) -> dict[str, Any]:
    """The payment check's work at ``now``, as the flow does it, without Prefect."""
    from tasks.aging import compute_aging
    from tasks.closing import close_paid_deals
    from tasks.deadlines import resend_failed_mail
    from tasks.dunning import apply_dunning_ladder

    statements: Counter[str] = Counter()
    _count_statements(statements)
    rss_start = _memory_kib("VmRSS")
    cpu_start, began = time.process_time(), time.perf_counter()
    parts: dict[str, float] = {}
    mark = began
    resent = resend_failed_mail.fn()
    parts["resend"], mark = time.perf_counter() - mark, time.perf_counter()
    summary = apply_dunning_ladder.fn(now)
    parts["ladder"], mark = time.perf_counter() - mark, time.perf_counter()
    closing = close_paid_deals.fn()
    parts["closing"], mark = time.perf_counter() - mark, time.perf_counter()
    aging = compute_aging.fn(now.astimezone(dt.UTC).date())
    parts["aging"] = time.perf_counter() - mark
    return {
        "wall": time.perf_counter() - began,
        "cpu": time.process_time() - cpu_start,
        "parts": parts,
        "rss_start_kib": rss_start,
        "peak_kib": _memory_kib("VmHWM"),
        "by_level": dict(summary.by_level),
        "escalated": summary.escalated,
        "holds": len(summary.holds),
        "emails_sent": summary.emails_sent,
        "emails_queued": summary.emails_queued,
        "smtp_connections": summary.smtp_connections,
        "resent": len(resent),
        "closing": len(closing),
        "aging_currencies": len(aging),
        "statements": dict(statements),
    }


BASELINE_MESSAGE = (
    b"From: dealflow@example.com\r\nTo: ap@customer.example\r\n"
    b"Subject: Payment reminder\r\n\r\n" + b"Invoice INV-0000 is overdue. " * 10 + b"\r\n"
)


def child_baseline(emails: int) -> dict[str, Any]:
    """The floor: every collectible invoice with its deal in one streamed SELECT, then
    ``emails`` pre-built small messages over one SMTP connection."""
    import smtplib

    import sqlalchemy as sa

    from models.settings import get_settings
    from models.tables import Deal, Invoice, InvoiceStatus

    settings = get_settings()
    statements: Counter[str] = Counter()
    _count_statements(statements)
    rss_start = _memory_kib("VmRSS")
    cpu_start, began = time.process_time(), time.perf_counter()
    engine = sa.create_engine(settings.resolved_database_url)
    query = (
        sa.select(
            Invoice.__table__,
            Deal.team,
            Deal.sales_rep_email,
            Deal.sales_rep_name,
            Deal.title,
        )
        .join(Deal, Deal.id == Invoice.deal_id)
        .where(Invoice.status.in_(InvoiceStatus.COLLECTIBLE))
    )
    rows = 0
    with engine.connect() as connection:
        for partition in connection.execution_options(yield_per=1000).execute(query).partitions():
            rows += len(partition)
    read = time.perf_counter() - began
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port) as smtp:
        for _ in range(emails):
            smtp.sendmail(settings.mail_from, ["ap@customer.example"], BASELINE_MESSAGE)
    engine.dispose()
    return {
        "wall": time.perf_counter() - began,
        "cpu": time.process_time() - cpu_start,
        "parts": {"select": read, "send": time.perf_counter() - began - read},
        "rss_start_kib": rss_start,
        "peak_kib": _memory_kib("VmHWM"),
        "rows": rows,
        "emails_sent": emails,
        "smtp_connections": 1,
        "statements": dict(statements),
    }


def child_naive(now: dt.datetime) -> dict[str, Any]:
    """The product's own ladder one invoice at a time: ``apply_dunning_ladder`` with
    ``tasks.dunning_batch.BATCH_SIZE`` set to 1 (each batch's query reads it when it runs), so
    that each invoice is read, locked and claimed in a transaction of its own and each
    person's digest goes out per invoice. What the batches of the real check save."""
    import tasks.dunning_batch
    from tasks.dunning import apply_dunning_ladder

    tasks.dunning_batch.BATCH_SIZE = 1
    statements: Counter[str] = Counter()
    _count_statements(statements)
    rss_start = _memory_kib("VmRSS")
    cpu_start, began = time.process_time(), time.perf_counter()
    summary = apply_dunning_ladder.fn(now)
    return {
        "wall": time.perf_counter() - began,
        "cpu": time.process_time() - cpu_start,
        "parts": {},
        "rss_start_kib": rss_start,
        "peak_kib": _memory_kib("VmHWM"),
        "by_level": dict(summary.by_level),
        "escalated": summary.escalated,
        "holds": len(summary.holds),
        "emails_sent": summary.emails_sent,
        "emails_queued": summary.emails_queued,
        "smtp_connections": summary.smtp_connections,
        "statements": dict(statements),
    }


def run_child(
    kind: str, url: str, smtp_port: int, data_dir: Path, out: Path, *extra: str
) -> dict[str, Any]:
    env = {
        **os.environ,
        "DEALFLOW_DATABASE_URL": url,
        "DEALFLOW_SMTP_HOST": "127.0.0.1",
        "DEALFLOW_SMTP_PORT": str(smtp_port),
        "DEALFLOW_DATA_DIR": str(data_dir),
        "DEALFLOW_MATRIX_PATH": str(PROJECT_ROOT / "config" / "matrix.yaml"),
        "PREFECT_HOME": str(data_dir / "prefect"),
    }
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--out", str(out)]
    child = subprocess.Popen([*command, *extra], cwd=PROJECT_ROOT, env=env)
    try:
        code = child.wait()
    except KeyboardInterrupt:
        child.terminate()  # it holds no lock the database would not release
        child.wait(timeout=60)
        raise
    if code != 0:
        raise BenchError(f"the {kind} child failed (exit code {code})")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


# --------------------------------------------------------------------------- verification


def database_counts(url: str) -> dict[str, int]:
    import sqlalchemy as sa

    from models.tables import CollectionHold, DunningLetter, SentMessage

    engine = sa.create_engine(url)
    with engine.connect() as connection:

        def count(table: Any, *where: Any) -> int:
            return int(
                connection.scalar(sa.select(sa.func.count()).select_from(table).where(*where)) or 0
            )

        counts = {
            "letters": count(DunningLetter),
            "unsent": count(SentMessage, SentMessage.status != "sent"),
            "sent": count(SentMessage, SentMessage.status == "sent"),
            "holds": count(CollectionHold, CollectionHold.cleared_at.is_(None)),
        }
    engine.dispose()
    return counts


def verify(
    result: dict[str, Any],
    before: dict[str, int],
    after: dict[str, int],
    received: int,
    sink: Sink,
) -> list[str]:
    """What is wrong with a check's outcome; empty if nothing."""
    problems = []
    letters = after["letters"] - before["letters"]
    if letters != result["escalated"]:
        problems.append(f"{letters} letters written, {result['escalated']} escalations reported")
    if after["unsent"]:
        problems.append(f"{after['unsent']} outbox row(s) left unsent")
    if after["sent"] - before["sent"] != result["emails_sent"] + result["resent"]:
        problems.append(
            f"{after['sent'] - before['sent']} outbox rows newly sent, "
            f"{result['emails_sent']} + {result['resent']} reported"
        )
    if received != result["emails_sent"] + result["resent"]:
        problems.append(f"the SMTP sink received {received}, {result['emails_sent']} reported")
    twice = [key for key, n in sink.keys.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} key(s) received more than once, e.g. {twice[0]}")
    return problems


# --------------------------------------------------------------------------- one database


@dataclass
class Measurement:
    database: str
    name: str
    label: str
    result: dict[str, Any]
    received: int = 0
    connections: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class DatabaseRun:
    database: str
    server: str
    seed: SeedReport
    measurements: list[Measurement]
    naive: Measurement | None = None
    naive_seed: SeedReport | None = None


def measured(
    sink: Sink, kind: str, url: str, smtp_port: int, scratch: Path, *extra: str
) -> tuple[dict[str, Any], int, int]:
    messages, connections = sink.snapshot()
    out = scratch / f"{kind}-{time.monotonic_ns()}.json"
    result = run_child(kind, url, smtp_port, scratch, out, *extra)
    after_messages, after_connections = sink.snapshot()
    return result, after_messages - messages, after_connections - connections


@contextmanager
def fresh_database(kind: str, scratch: Path, suffix: str) -> Iterator[str]:
    """A URL of an empty database of this run's own; a PostgreSQL one is dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{scratch / f'dealflow{suffix}.db'}"
        return
    name = f"dealflow_bench_{os.getpid()}{suffix}"
    create_databases(POSTGRES_SERVER, [name])
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        drop_databases(POSTGRES_SERVER, [name])


def server_version(url: str) -> str:
    if url.startswith("sqlite"):
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as connection:
        found = str(connection.scalar(sa.text("SHOW server_version")))
    engine.dispose()
    return f"PostgreSQL {found.split()[0]}"


def run_database(kind: str, args: argparse.Namespace, sink: Sink, port: int) -> DatabaseRun:
    with tempfile.TemporaryDirectory(prefix="dealflow-bench-") as folder:
        scratch = Path(folder)
        with fresh_database(kind, scratch, "") as url:
            say(f"[{kind}] seeding {args.invoices:,} invoices of {args.deals:,} deals ...")
            seeded = seed(url, args.invoices, args.deals, args.customers, random.Random(args.seed))
            say(f"[{kind}] seeded in {seeded.seconds:.0f}s")
            run = DatabaseRun(kind, server_version(url), seeded, [])
            sink.keys.clear()
            before = database_counts(url)
            for name, label, offset in CHECKS:
                now = (CHECK_AT + offset).isoformat()
                result, received, connections = measured(
                    sink, "check", url, port, scratch, "--now", now
                )
                after = database_counts(url)
                check = Measurement(kind, name, label, result, received, connections)
                check.problems = verify(result, before, after, received, sink)
                before = after
                run.measurements.append(check)
                say(f"[{kind}] {label}: {summary_line(check)}")
                if name == "first":
                    emails = str(result["emails_sent"])
                    result, received, connections = measured(
                        sink, "baseline", url, port, scratch, "--emails", emails
                    )
                    baseline = Measurement(
                        kind,
                        "baseline",
                        "baseline: one SELECT + as many emails, 1 connection",
                        result,
                        received,
                        connections,
                    )
                    if received != result["emails_sent"]:
                        baseline.problems.append(f"the sink received {received}")
                    run.measurements.append(baseline)
                    say(f"[{kind}] {baseline.label}: {summary_line(baseline)}")
        if args.naive_sample:
            deals = max(1, round(args.naive_sample * args.deals / args.invoices))
            customers = max(10, round(args.customers * args.naive_sample / args.invoices))
            with fresh_database(kind, scratch, "_naive") as url:
                run.naive_seed = seed(
                    url, args.naive_sample, deals, customers, random.Random(args.seed)
                )
                sink.keys.clear()
                before = database_counts(url)
                result, received, connections = measured(
                    sink, "naive", url, port, scratch, "--now", CHECK_AT.isoformat()
                )
                naive = Measurement(
                    kind,
                    "naive",
                    f"our ladder, one invoice per batch ({args.naive_sample:,} invoices)",
                    result,
                    received,
                    connections,
                )
                result.setdefault("resent", 0)
                naive.problems = verify(result, before, database_counts(url), received, sink)
                run.naive = naive
                say(f"[{kind}] {naive.label}: {summary_line(naive)}")
    return run


def summary_line(m: Measurement) -> str:
    r = m.result
    verdict = "verified" if not m.problems else "PROBLEMS: " + "; ".join(m.problems)
    return (
        f"{r['wall']:.1f}s wall, peak {r['peak_kib'] / 1024:.0f} MiB, "
        f"{r.get('escalated', '-')} escalations, {r['emails_sent']} emails over "
        f"{m.connections} connection(s), {statement_total(r):,} statements; {verdict}"
    )


def statement_total(result: dict[str, Any]) -> int:
    return sum(n for verb, n in result["statements"].items() if verb != "parameter sets")


# --------------------------------------------------------------------------- report


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"


def _levels(by_level: dict[str, int]) -> str:
    from models.matrix import load_matrix
    from models.settings import PROJECT_ROOT as ROOT

    order = [level.name for level in load_matrix(ROOT / "config" / "matrix.yaml").dunning.levels]
    shown = [f"{name} {by_level[name]:,}" for name in order if by_level.get(name)]
    return ", ".join(shown) or "none"


def _verbs(result: dict[str, Any]) -> str:
    statements = result["statements"]
    verbs = sorted((v for v in statements if v != "parameter sets"), key=lambda v: -statements[v])
    return ", ".join(f"{v} {statements[v]:,}" for v in verbs) or "none"


def render_section(runs: Sequence[DatabaseRun], args: argparse.Namespace, record: RunRecord) -> str:
    rows: list[list[str]] = []
    ratios: list[list[str]] = []
    parts: list[list[str]] = []
    seeds: list[list[str]] = []
    for run in runs:
        by_name = {m.name: m for m in run.measurements}
        for m in [*run.measurements, *([run.naive] if run.naive else [])]:
            r = m.result
            scale = args.invoices / args.naive_sample if m.name == "naive" else 1.0
            label = m.label
            wall = f"{r['wall']:.1f}"
            if m.name == "naive":
                label += f"; extrapolated x{scale:g} to {args.invoices:,}"
                wall = f"{r['wall']:.1f} (~{r['wall'] * scale:,.0f} extrapolated)"
            rows.append(
                [
                    run.server,
                    label,
                    wall,
                    f"{r['cpu']:.1f}",
                    f"{_mib(r['peak_kib'])} ({_mib(r['rss_start_kib'])})",
                    _levels(r["by_level"]) if "by_level" in r else f"{r['rows']:,} rows read",
                    f"{r.get('holds', '-')}",
                    f"{r['emails_sent']:,}",
                    f"{m.connections:,}",
                    f"{statement_total(r):,} ({r['statements'].get('parameter sets', 0):,})",
                    "yes" if not m.problems else "NO: " + "; ".join(m.problems),
                ]
            )
            if m.name in {"first", "again", "next-day"}:
                p = r["parts"]
                parts.append(
                    [
                        run.server,
                        m.name,
                        *(f"{p[k]:.2f}" for k in ("resend", "ladder", "closing", "aging")),
                        _verbs(r),
                    ]
                )
        first, base = by_name["first"].result, by_name["baseline"].result
        ratios.append(
            [
                run.server,
                f"{first['wall']:.1f} / {base['wall']:.1f} = {first['wall'] / base['wall']:.1f}",
                f"{first['cpu']:.1f} / {base['cpu']:.1f} = {first['cpu'] / base['cpu']:.1f}",
                f"{_mib(first['peak_kib'])} / {_mib(base['peak_kib'])} = "
                f"{first['peak_kib'] / base['peak_kib']:.1f}",
                f"{_mib(first['peak_kib'] - first['rss_start_kib'])} / "
                f"{_mib(base['peak_kib'] - base['rss_start_kib'])}",
                f"{statement_total(first):,} / {statement_total(base):,}",
            ]
        )
        s = run.seed
        seeds.append(
            [
                run.server,
                f"{s.deals:,}",
                f"{s.invoices:,}",
                f"{s.customers:,} ({s.on_hold} on hold)",
                ", ".join(f"{w} {s.by_window[w]:,}" for w, *_ in WINDOWS)
                + f"; disputed {s.by_window['disputed']:,}",
                f"{s.by_status['partially_paid']:,}",
                f"{s.seconds:.0f}",
            ]
        )
    main_table = table(
        [
            "database",
            "run",
            "wall s",
            "CPU s",
            "peak RSS MiB (at start)",
            "escalations by level",
            "holds placed",
            "emails sent",
            "SMTP connections",
            "SQL statements (parameter sets)",
            "verified",
        ],
        rows,
    )
    ratio_table = table(
        [
            "database",
            "wall s, ours / baseline",
            "CPU s, ours / baseline",
            "peak RSS MiB, ours / baseline",
            "RSS growth MiB, ours / baseline",
            "SQL statements, ours / baseline",
        ],
        ratios,
    )
    parts_table = table(
        ["database", "check", "resend s", "ladder s", "closing s", "aging s", "statements by kind"],
        parts,
    )
    seed_table = table(
        [
            "database",
            "deals",
            "open invoices",
            "customers",
            "invoices by days overdue at the first check",
            "partially paid",
            "seeding s",
        ],
        seeds,
    )
    windows = "; ".join(
        f"{name} {low} to {high}: {SHARES['prompt'][i]:.0%} / {SHARES['late'][i]:.0%}"
        for i, (name, low, high) in enumerate(WINDOWS)
    )
    versions = ", ".join(run.server for run in runs)
    software = f"{versions}, SQLAlchemy {version('sqlalchemy')}, psycopg {version('psycopg')}"
    opening = record.header(
        SCRIPT, make_target="bench-finance", code_change=CODE_CHANGE_SPELLED, machine_note=software
    )
    return f"""{SECTION_TITLE}

The payment check's work over {args.invoices:,} open invoices ({args.deals:,} deals waiting
for payment), each measurement in a child process of its own: `resend_failed_mail`,
`apply_dunning_ladder`, `close_paid_deals` and `compute_aging` called through `.fn` as the
payment-check flow calls them, without a Prefect server (the flow adds a constant on top:
one flow run, its task runs and two artifacts). Email goes to an SMTP sink in the bench
process that counts messages and connections. Against a baseline measured in the same
run on the same database: one streamed SELECT of every collectible invoice with its deal,
then as many pre-built small emails as the first check sent, over one SMTP connection
(run right after the first check).

{opening}
- Other work on the machine shows in the load averages above: wall times carry it; CPU
  seconds (the child's own user + system time) carry less of it.

{main_table}

Ours against the baseline (first check):

{ratio_table}

Where the first, repeated and next day's checks spend their time (seconds), and the
statements each issued by kind:

{parts_table}

The data ({args.customers:,} customers on two teams, {REPS_PER_TEAM} sales reps per team,
seed {args.seed}; seeding is not in the figures):

{seed_table}

- Due dates: each invoice's days overdue at the first check ({CHECK_AT:%Y-%m-%d %H:%M} UTC)
  is drawn from windows with these shares (prompt payers / the {LATE_PAYERS:.0%} of
  customers who pay late): {windows}. At the first check only late payers have invoices in
  the collections window; the first of a customer's invoices to reach collections puts
  the customer on hold and their other invoices leave the ladder, so far fewer invoices
  reach collections than lie in its window. The next day, prompt payers' invoices at day
  29 reach collections too (hence the holds placed then). {DISPUTED:.0%} of invoices are
  disputed, {PARTIALLY_PAID:.0%} partially paid, {ON_HOLD:.0%} of customers on hold before the run.
  The database also holds each invoice's sent outbox row and three timeline entries per deal.
- "SQL statements" counts cursor executions seen by SQLAlchemy (`before_cursor_execute`),
  BEGIN on SQLite included; an executemany counts once, and its rows are in "parameter
  sets". "Peak RSS" is the child's VmHWM; "at start" its RSS once its modules were imported.
- Where the statements go: claiming takes a handful per batch of 1,000 invoices (read and
  lock the batch, insert its letters, timeline entries and outbox rows, update its
  invoices, place its holds), whatever the batch holds. Sending claims the outbox rows
  a hundred at a time (one UPDATE, committed before any email goes to SMTP, so no
  transaction is open while the mail server talks), then marks each email sent as soon
  as the server took it (one UPDATE each), so that a check killed halfway repeats at most
  the one email in flight (tests/tasks/test_dunning.py, tests/tasks/test_outbox.py). On
  PostgreSQL those marks commit by themselves without waiting for the disk (autocommit,
  `synchronous_commit` off: SET and RESET once per batch). Statements grow with batches
  and emails, not with the invoices read: the steady-state check reads every collectible
  invoice in one SELECT per batch.
- Escalations are the levels claimed, one per invoice (a level missed while no check ran
  is caught up with the highest level due only); the emails are the customers' letters
  (friendly, reminder) plus one digest per person named by a level, per batch of
  invoices. Verified after each check: letters written == escalations reported, no outbox
  row unsent, every outbox key received by the sink once over the whole run, messages
  received == emails reported.
- "One invoice per batch" (when run) is the same `apply_dunning_ladder` with
  `tasks.dunning_batch.BATCH_SIZE` set to 1 in its child: each invoice is read, locked and
  claimed in a transaction of its own, and each person named by a level gets a digest
  per invoice; on a database of its own with the same distribution. It shows what the
  batches of 1,000 save; its time is extrapolated linearly, not measured at full size.
"""


# --------------------------------------------------------------------------- main


def run_child_mode(args: argparse.Namespace) -> None:
    if args.child == "check":
        result = child_check(dt.datetime.fromisoformat(args.now))
    elif args.child == "baseline":
        result = child_baseline(args.emails)
    else:
        result = child_naive(dt.datetime.fromisoformat(args.now))
    args.out.write_text(json.dumps(result))


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--invoices", type=int, default=100_000, help="Open invoices in all.")
    parser.add_argument("--deals", type=int, default=20_000, help="Deals they belong to.")
    parser.add_argument("--customers", type=int, default=1_000, help="Customers of the deals.")
    parser.add_argument(
        "--databases",
        default="postgresql,sqlite",
        help="Comma-separated: postgresql, sqlite (in this order by default).",
    )
    parser.add_argument(
        "--naive-sample",
        type=int,
        default=5_000,
        help="Invoices for our ladder one invoice per batch, extrapolated (0: leave it out).",
    )
    parser.add_argument("--seed", type=int, default=2026, help="Random seed of the data.")
    parser.add_argument(
        "--no-results", action="store_true", help="Print the tables only; leave RESULTS.md alone."
    )
    parser.add_argument("--child", choices=["check", "baseline", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    parser.add_argument("--emails", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child_mode(args)
        return
    databases = [name.strip() for name in args.databases.split(",") if name.strip()]
    unknown = sorted(set(databases) - {"postgresql", "sqlite"})
    if unknown or not databases:
        parser.error(
            f"--databases: unknown {', '.join(unknown) or 'empty list'}; use postgresql, sqlite"
        )
    if args.deals < 1 or args.invoices < args.deals or args.customers < 1:
        parser.error("--deals and --customers must be at least 1, --invoices at least --deals")
    if args.invoices // args.deals > 99:
        parser.error("at most 99 invoices per deal (invoice numbers have two digits)")
    if args.naive_sample < 0 or args.naive_sample > args.invoices:
        parser.error("--naive-sample must be between 0 and --invoices")

    signal.signal(signal.SIGTERM, raise_interrupt)
    clock = RunClock(argv)
    sink = Sink()
    controller = start_sink(sink)
    try:
        runs = [run_database(kind, args, sink, controller.port) for kind in databases]
    finally:
        controller.stop()
    section = render_section(runs, args, clock.stop())
    say("\n" + section)
    problems = [m for run in runs for m in [*run.measurements, run.naive] if m and m.problems]
    if problems:
        raise BenchError(
            "verification failed; RESULTS.md left alone: "
            + "; ".join(f"{m.database} {m.name}: {', '.join(m.problems)}" for m in problems)
        )
    if not args.no_results:
        write_results(section, SECTION_TITLE)


if __name__ == "__main__":
    run_main(main)
