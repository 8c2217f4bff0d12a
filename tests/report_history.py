"""A small history of deals whose measures a person can work out by hand.

Team EMEA (Berlin, 09:00-17:00, UTC+1 in early March 2026). The report week is Monday
2026-03-02 to Sunday 2026-03-08; the week before is 2026-02-23 to 2026-03-01.

- D1 (Sam, 10,000 EUR): manager approves in 4 business hours, legal in 8; handed off on
  Tue 03-03. Delivery starts Mon 03-09, so its plan was due Mon 03-02 (5 business days
  before) and is not confirmed.
- D2 (Sam, 20,000 EUR): the manager rejects after 20 business hours (Wed 09:00 to Fri 13:00).
- D3 (Ann, 5,000 USD): waits at the manager's gate since Thu 03-05 09:00 local.
- D4 (Ann, 7,000 EUR, the week before): manager approves after 31 business hours (late);
  handed off Fri 02-27.
- D5 (Ann, a lead): screened after 20 business hours (limit 16: late), now at needs
  discovery.

Invoices: I1 10,000 EUR (D1, due 04-02, open); I4 7,000 EUR (D4, due 03-04, 3,000 paid
03-06 and 4,000 on 03-12); I6 2,000 EUR (D4, due 2025-12-31, never paid, second
reminder); I7 500 USD (D1, issued 02-02, paid in full 03-05).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from dealflow.infra.db import session_scope
from models.tables import Approval, Deal, Invoice, Payment, StageTransition

UTC = dt.UTC
MARA, LENA = "Mara Keller", "Lena Fischer"


def at(day: str, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.fromisoformat(f"2026-{day}T{hour:02d}:{minute:02d}:00+00:00")


def _deal(deal_id: str, rep: str, amount: int, currency: str, stage: str, **extra: object) -> Deal:
    values: dict[str, object] = {
        "id": deal_id,
        "title": f"Deal {deal_id}",
        "team": "emea",
        "customer_name": f"Customer {deal_id}",
        "amount": Decimal(amount),
        "currency": currency,
        "sales_rep_email": f"{rep.lower()}@example.com",
        "sales_rep_name": rep,
        "payload": {"delivery_start": extra.pop("delivery_start", "2026-06-01")},
        "payload_hash": deal_id,
        "stage": stage,
        "created_at": at("01-01", 0),
        "updated_at": at("01-01", 0),
    }
    values.update(extra)
    return Deal(**values)


def _timeline(deal_id: str, *entries: tuple[str, str, dt.datetime]) -> list[StageTransition]:
    return [
        StageTransition(deal_id=deal_id, key=key, stage=stage, event=key, actor="test", at=when)
        for key, stage, when in entries
    ]


def _gate(
    deal_id: str,
    gate: str,
    position: int,
    asked: dt.datetime,
    decided: dt.datetime | None = None,
    decision: str | None = None,
    by: str | None = None,
) -> Approval:
    return Approval(
        deal_id=deal_id,
        gate=gate,
        position=position,
        role="sales_manager" if gate == "manager" else gate,
        assignee_email=f"{gate}@example.com",
        assignee_name=by or MARA,
        requested_at=asked,
        decided_at=decided,
        decision=decision,
        decided_by=f"{gate}@example.com" if decided else None,
        decided_by_name=by,
    )


def _invoice(
    number: str, deal_id: str, amount: int, currency: str, issued: str, due: str, **extra: object
) -> Invoice:
    return Invoice(
        deal_id=deal_id,
        number=number,
        sequence=int(number[1:]),
        label=number,
        milestone="signing",
        amount=Decimal(amount),
        currency=currency,
        issue_date=dt.date.fromisoformat(issued),
        due_date=dt.date.fromisoformat(due),
        billing_email="ap@example.com",
        customer_name=f"Customer {deal_id}",
        created_at=at("01-01", 0),
        **extra,
    )


def _payment(key: str, invoice: Invoice, amount: int, received: str) -> Payment:
    return Payment(
        key=key,
        invoice_id=invoice.id,
        amount=Decimal(amount),
        applied=Decimal(amount),
        excess=Decimal(0),
        currency=invoice.currency,
        received_on=dt.date.fromisoformat(received),
        source="test",
        recorded_by="test",
        recorded_at=at("03-20", 0),
    )


def seed_hand_history() -> None:
    with session_scope() as session:
        session.add_all(
            [
                _deal(
                    "D1",
                    "Sam",
                    10000,
                    "EUR",
                    "awaiting_payment",
                    outcome="handed_off",
                    delivery_start="2026-03-09",
                ),
                _deal("D2", "Sam", 20000, "EUR", "rejected", outcome="rejected"),
                _deal(
                    "D3",
                    "Ann",
                    5000,
                    "USD",
                    "approval:manager",
                    waiting_on="mara.keller@example.com",
                    waiting_on_name=MARA,
                    waiting_since=at("03-05", 8),
                ),
                _deal("D4", "Ann", 7000, "EUR", "awaiting_payment", outcome="handed_off"),
                _deal(
                    "D5",
                    "Ann",
                    3000,
                    "EUR",
                    "needs_discovery",
                    waiting_on="ann@example.com",
                    waiting_on_name="Ann",
                    waiting_since=at("03-04", 12),
                ),
            ]
        )
        session.flush()
        session.add_all(
            [
                *_timeline(
                    "D1",
                    ("submitted", "submitted", at("03-02", 8)),
                    ("route", "submitted", at("03-02", 8)),
                    ("gate/manager/requested", "approval:manager", at("03-02", 9)),
                    ("gate/manager/decided", "approval:manager", at("03-02", 13)),
                    ("gate/legal/requested", "approval:legal", at("03-02", 13)),
                    ("gate/legal/decided", "approval:legal", at("03-03", 13)),
                    ("kickoff", "delivery_kickoff", at("03-03", 13)),
                    ("invoiced", "awaiting_payment", at("03-03", 13)),
                ),
                *_timeline(
                    "D2",
                    ("submitted", "submitted", at("03-04", 8)),
                    ("route", "submitted", at("03-04", 8)),
                    ("gate/manager/requested", "approval:manager", at("03-04", 8)),
                    ("gate/manager/decided", "rejected", at("03-06", 12)),
                ),
                *_timeline(
                    "D3",
                    ("submitted", "submitted", at("03-05", 8)),
                    ("route", "submitted", at("03-05", 8)),
                    ("gate/manager/requested", "approval:manager", at("03-05", 8)),
                ),
                *_timeline(
                    "D4",
                    ("submitted", "submitted", at("02-24", 8)),
                    ("route", "submitted", at("02-24", 8)),
                    ("gate/manager/requested", "approval:manager", at("02-24", 8)),
                    ("gate/manager/decided", "approval:manager", at("02-27", 15)),
                    ("kickoff", "delivery_kickoff", at("02-27", 15)),
                    ("invoiced", "awaiting_payment", at("02-27", 15)),
                ),
                *_timeline(
                    "D5",
                    ("submitted", "submitted", at("03-02", 8)),
                    ("stage/lead_screening/opened", "lead_screening", at("03-02", 8)),
                    ("stage/lead_screening/reported", "lead_screening", at("03-04", 12)),
                    ("stage/needs_discovery/opened", "needs_discovery", at("03-04", 12)),
                ),
                _gate("D1", "manager", 0, at("03-02", 9), at("03-02", 13), "approved", MARA),
                _gate("D1", "legal", 1, at("03-02", 13), at("03-03", 13), "approved", LENA),
                _gate("D2", "manager", 0, at("03-04", 8), at("03-06", 12), "rejected", MARA),
                _gate("D3", "manager", 0, at("03-05", 8)),
                _gate("D4", "manager", 0, at("02-24", 8), at("02-27", 15), "approved", MARA),
            ]
        )
        i1 = _invoice("I1", "D1", 10000, "EUR", "2026-03-03", "2026-04-02")
        i4 = _invoice(
            "I4",
            "D4",
            7000,
            "EUR",
            "2026-02-27",
            "2026-03-04",
            status="paid",
            paid_amount=Decimal(7000),
            paid_at=at("03-12", 10),
        )
        i6 = _invoice(
            "I6",
            "D4",
            2000,
            "EUR",
            "2025-12-01",
            "2025-12-31",
            dunning_level="second-reminder",
            dunning_rank=2,
        )
        i7 = _invoice(
            "I7",
            "D1",
            500,
            "USD",
            "2026-02-02",
            "2026-02-10",
            status="paid",
            paid_amount=Decimal(500),
            paid_at=at("03-05", 10),
        )
        session.add_all([i1, i4, i6, i7])
        session.flush()
        session.add_all(
            [
                _payment("p1", i4, 3000, "2026-03-06"),
                _payment("p2", i4, 4000, "2026-03-12"),
                _payment("p3", i7, 500, "2026-03-05"),
            ]
        )
