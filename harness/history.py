"""A made-up but plausible history of many deals, written straight into Dealflow's tables
in bulk: timelines, approvals, invoices and payments, as the flows would have left them.

Used by the reports' benchmark (bench/pipeline_report.py, 100,000 deals) and by a test
(tests/dealflow/reports/test_report_measures_large.py, a few thousand) that recounts
the measures from the generated rows by brute force.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert

from models.tables import Approval, Deal, Invoice, Payment, StageTransition

GATES = ("manager", "director", "legal")
APPROVERS = {
    "emea": {"manager": "Mara Keller", "director": "Dana Whitfield", "legal": "Lena Fischer"},
    "nam": {"manager": "Tom Alvarez", "director": "Dana Whitfield", "legal": "Lena Fischer"},
}
REPS = [f"Rep {n:02d}" for n in range(1, 21)]


@dataclass
class History:
    deals: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.deals)


def _working(moment: dt.datetime, rng: random.Random, hours: float) -> dt.datetime:
    """Roughly ``hours`` later, moved into a weekday between 08:00 and 15:00 UTC."""
    later = moment + dt.timedelta(hours=hours)
    moved = later.replace(
        hour=8 + rng.randrange(7), minute=rng.randrange(60), second=0, microsecond=0
    )
    if moved < later:
        moved += dt.timedelta(days=1)
    while moved.weekday() >= 5:
        moved += dt.timedelta(days=1)
    return moved


def generate(count: int, today: dt.date, *, seed: int = 7, days: int = 365) -> History:
    """``count`` deals created over the ``days`` before ``today``."""
    rng = random.Random(seed)
    history = History()
    end = dt.datetime.combine(today, dt.time(12), dt.UTC)
    for number in range(count):
        _deal(history, rng, f"G{number:06d}", end - dt.timedelta(days=rng.uniform(0, days)), end)
    return history


def _deal(
    history: History, rng: random.Random, deal_id: str, created: dt.datetime, end: dt.datetime
) -> None:
    team = rng.choice(("emea", "nam"))
    currency = "EUR" if team == "emea" else "USD"
    amount = Decimal(rng.randrange(2_000, 200_000))
    moment = _working(created, rng, 0)
    deal: dict[str, Any] = {
        "id": deal_id,
        "title": f"Deal {deal_id}",
        "team": team,
        "customer_name": f"Customer {rng.randrange(5000):04d}",
        "amount": amount,
        "currency": currency,
        "sales_rep_email": "rep@example.com",
        "sales_rep_name": rng.choice(REPS),
        "payload": {
            "delivery_start": (moment + dt.timedelta(days=rng.randrange(10, 60))).date().isoformat()
        },
        "payload_hash": deal_id,
        "stage": "submitted",
        "waiting_on": None,
        "waiting_on_name": None,
        "waiting_since": None,
        "grade": None,
        "outcome": None,
        "outcome_reason": None,
        "flow_run_id": None,
        "matrix_version": "bench",
        "created_at": moment,
        "updated_at": moment,
    }
    history.deals.append(deal)
    steps = 0

    def step(key: str, stage: str, at: dt.datetime) -> None:
        nonlocal steps
        history.transitions.append(
            {
                "deal_id": deal_id,
                "key": key,
                "stage": stage,
                "event": key,
                "actor": "bench",
                "comment": "",
                "at": at,
            }
        )
        deal["stage"], deal["updated_at"] = stage, at
        steps += 1

    def wait(who: str, since: dt.datetime) -> None:
        deal["waiting_on"] = deal["waiting_on_name"] = who
        deal["waiting_since"] = since

    step("submitted", "submitted", moment)
    if rng.random() < 0.3:
        for stage in ("lead_screening", "needs_discovery", "quote"):
            step(f"stage/{stage}/opened", stage, moment)
            done = _working(moment, rng, rng.uniform(2, 90))
            if done > end:
                wait(deal["sales_rep_name"], moment)
                return
            lost = rng.random() < 0.08
            step(f"stage/{stage}/reported", "lost" if lost else stage, done)
            if stage == "lead_screening":
                deal["grade"] = rng.choice("ABC")
            moment = done
            if lost:
                deal["outcome"] = "lost"
                return
    step("route", deal["stage"], moment)
    gates = [
        "manager",
        *(["director"] if rng.random() < 0.3 else []),
        *(["legal"] if rng.random() < 0.6 else []),
    ]
    for position, gate in enumerate(gates):
        stage = f"approval:{gate}"
        step(f"gate/{gate}/requested", stage, moment)
        approval: dict[str, Any] = {
            "deal_id": deal_id,
            "gate": gate,
            "position": position,
            "role": gate,
            "assignee_email": f"{gate}@example.com",
            "assignee_name": APPROVERS[team][gate],
            "requested_at": moment,
            "escalated_to": None,
            "escalated_to_name": None,
            "escalated_at": None,
            "decision": None,
            "decided_by": None,
            "decided_by_name": None,
            "comment": None,
            "decided_at": None,
        }
        history.approvals.append(approval)
        decided = _working(moment, rng, rng.expovariate(1 / 20))
        if decided > end:
            wait(APPROVERS[team][gate], moment)
            return
        decision = "rejected" if rng.random() < 0.1 else "approved"
        approval.update(
            decision=decision,
            decided_by=f"{gate}@example.com",
            decided_by_name=APPROVERS[team][gate],
            decided_at=decided,
        )
        step(f"gate/{gate}/decided", "rejected" if decision == "rejected" else stage, decided)
        moment = decided
        if decision == "rejected":
            deal["outcome"] = "rejected"
            return
    step("kickoff", "delivery_kickoff", moment)
    step("invoiced", "awaiting_payment", moment)
    deal["outcome"] = "handed_off"
    _invoices(history, rng, deal, moment, end)


def _invoices(
    history: History,
    rng: random.Random,
    deal: dict[str, Any],
    moment: dt.datetime,
    end: dt.datetime,
) -> None:
    parts = [deal["amount"]] if rng.random() < 0.6 else [deal["amount"] / 2, deal["amount"] / 2]
    issued = moment.date()
    for sequence, amount in enumerate(parts, start=1):
        number = f"INV-{deal['id']}-{sequence:02d}"
        invoice: dict[str, Any] = {
            "id": len(history.invoices) + 1,
            "deal_id": deal["id"],
            "number": number,
            "sequence": sequence,
            "label": "part",
            "milestone": "signing",
            "amount": amount.quantize(Decimal("0.01")),
            "currency": deal["currency"],
            "issue_date": issued,
            "due_date": issued + dt.timedelta(days=30),
            "status": "open",
            "billing_email": "ap@example.com",
            "created_at": moment,
            "customer_name": deal["customer_name"],
            "paid_amount": Decimal(0),
            "paid_at": None,
            "dunning_level": None,
            "dunning_rank": 0,
            "dunning_at": None,
            "dispute_reason": None,
        }
        history.invoices.append(invoice)
        paid_on = issued + dt.timedelta(days=int(rng.uniform(5, 90)))
        if paid_on <= end.date() and rng.random() < 0.85:
            share = (
                invoice["amount"]
                if rng.random() < 0.9
                else (invoice["amount"] / 2).quantize(Decimal("0.01"))
            )
            history.payments.append(
                {
                    "key": f"bench/{number}",
                    "invoice_id": invoice["id"],
                    "amount": share,
                    "applied": share,
                    "excess": Decimal(0),
                    "currency": invoice["currency"],
                    "received_on": paid_on,
                    "reference": number,
                    "source": "bench",
                    "recorded_by": "bench",
                    "recorded_at": dt.datetime.combine(paid_on, dt.time(12), dt.UTC),
                }
            )
            invoice["paid_amount"] = share
            if share == invoice["amount"]:
                invoice["status"] = "paid"
                invoice["paid_at"] = dt.datetime.combine(paid_on, dt.time(12), dt.UTC)
            else:
                invoice["status"] = "partially_paid"
        if invoice["status"] != "paid" and (end.date() - invoice["due_date"]).days > 14:
            invoice["dunning_level"], invoice["dunning_rank"] = "first-reminder", 1


def _batches(rows: list[dict[str, Any]], size: int = 5000) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def store(engine: Engine, history: History) -> None:
    """Write the history into an empty, migrated database, in bulk."""
    with engine.begin() as connection:
        for table, rows in (
            (Deal, history.deals),
            (StageTransition, history.transitions),
            (Approval, history.approvals),
            (Invoice, history.invoices),
            (Payment, history.payments),
        ):
            for batch in _batches(rows):
                connection.execute(insert(table), batch)
