"""The measures over a few thousand generated deals, against a brute-force recount of the
generated rows (the slow day-by-day business calendar, plain loops per deal)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from dealflow.infra.db import get_engine, session_scope
from dealflow.reports.measures import AGING_BUCKETS, bucket_of, quantile
from dealflow.reports.period import ReportPeriod
from dealflow.reports.pipeline_figures import figures
from harness.history import generate, store
from models.matrix import load_matrix
from models.settings import get_settings

TODAY = dt.date(2026, 6, 30)
PERIOD = ReportPeriod(dt.date(2026, 6, 1), dt.date(2026, 6, 28), "UTC")


def test_measures_agree_with_a_brute_force_recount(database_url: str) -> None:
    history = generate(3000, TODAY, days=200)
    store(get_engine(database_url), history)
    matrix = load_matrix(get_settings().matrix_path)
    with session_scope() as session:
        got = figures(session, matrix, PERIOD)
    start, end = PERIOD.utc
    inside = [t for t in history.transitions if start <= t["at"] < end]

    assert got.won == sum(t["key"] == "route" for t in inside) > 100
    assert got.handed_off == sum(t["key"] == "kickoff" for t in inside) > 50

    team = {d["id"]: d["team"] for d in history.deals}
    decided = [a for a in history.approvals if a["decided_at"] and start <= a["decided_at"] < end]
    for gate in ("manager", "director", "legal"):
        rows = [a for a in decided if a["gate"] == gate]
        hours = [
            matrix.calendar(team[a["deal_id"]])
            .working_time_between(a["requested_at"], a["decided_at"])
            .total_seconds()
            / 3600
            for a in rows
        ]
        figure = got.gates[gate]
        assert figure.decided == len(rows)
        assert figure.approved == sum(a["decision"] == "approved" for a in rows)
        assert figure.turnaround.median == pytest.approx(quantile(hours, 0.5))
        assert figure.turnaround.p90 == pytest.approx(quantile(hours, 0.9))

    issued: dict[str, Decimal] = defaultdict(Decimal)
    for inv in history.invoices:
        if PERIOD.first <= inv["issue_date"] <= PERIOD.last:
            issued[inv["currency"]] += inv["amount"]
    assert {c: a.amount for c, a in got.issued.items()} == issued
    cash: dict[str, Decimal] = defaultdict(Decimal)
    for pay in history.payments:
        if PERIOD.first <= pay["received_on"] <= PERIOD.last:
            cash[pay["currency"]] += pay["applied"]
    assert {c: a.amount for c, a in got.collected.items()} == cash

    paid: dict[int, Decimal] = defaultdict(Decimal)
    for pay in history.payments:
        if pay["received_on"] <= PERIOD.last:
            paid[pay["invoice_id"]] += pay["applied"]
    aging: Counter[tuple[str, str]] = Counter()
    for inv in history.invoices:
        balance = inv["amount"] - paid[inv["id"]]
        if inv["issue_date"] <= PERIOD.last and balance > 0:
            aging[(bucket_of(inv["due_date"], PERIOD.last), inv["currency"])] += 1
    assert {
        (bucket, c): cell.items
        for bucket in AGING_BUCKETS
        for c, cell in got.overdue[bucket].items()
    } == dict(aging)

    stays_ended: Counter[str] = Counter()
    by_deal: dict[str, list[dict[str, object]]] = defaultdict(list)
    for t in history.transitions:
        by_deal[str(t["deal_id"])].append(t)
    for rows in by_deal.values():
        stages = [(str(r["stage"]), r["at"]) for r in rows]
        for (stage, _), (following, at) in itertools.pairwise(stages):
            if following != stage and isinstance(at, dt.datetime) and start <= at < end:
                stays_ended[stage] += 1
    assert {stage: s.count for stage, s in got.cycle} == dict(stays_ended)
