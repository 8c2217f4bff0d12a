"""What a revision changed, in the words approvers read ("What changed since revision 1")."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from models.deal import DealIntake
from models.revisions import changed_fields
from models.settings import PROJECT_ROOT


def acme(**changes: Any) -> DealIntake:
    data = json.loads((PROJECT_ROOT / "examples" / "acme.json").read_text())
    data.update(changes)
    return DealIntake.model_validate(data)


def test_the_same_deal_changed_nothing() -> None:
    assert changed_fields(acme(), acme()) == []


def test_a_lower_discount_names_the_amount_and_the_discount() -> None:
    # 120 x 310 + 120 x 96 + 8500 = 57220 list; 10% off is 51498
    cheaper = acme(discount_percent="10", amount="51498.00")
    assert changed_fields(acme(), cheaper) == [
        "amount: 54,359.00 EUR -> 51,498.00 EUR",
        "discount: 5% -> 10%",
    ]


def test_line_items_terms_and_dates() -> None:
    before = acme()
    data = before.model_dump(mode="json")
    data["line_items"][0]["quantity"] = 100  # 120 -> 100 units
    del data["line_items"][2]  # no training
    data["line_items"].append({"description": "Spare units", "quantity": 5, "unit_price": "310.00"})
    total = Decimal(100 * 310 + 120 * 96 + 5 * 310)
    data["amount"] = str((total * Decimal("0.95")).quantize(Decimal("0.01")))
    data["payment_terms"] = {
        "net_days": 45,
        "schedule": [
            {"label": "On signing", "percent": "50", "milestone": "signing"},
            {"label": "On acceptance", "percent": "50", "milestone": "acceptance"},
        ],
    }
    data["delivery_start"] = "2027-02-01"
    after = DealIntake.model_validate(data)
    changes = changed_fields(before, after)
    assert changes[0].startswith("amount: 54,359.00 EUR -> ")
    assert changes[1:] == [
        "line item changed: Telematics units, installed (120 x 310.00 EUR) -> "
        "Telematics units, installed (100 x 310.00 EUR)",
        "line item removed: Onboarding and driver training (1 x 8,500.00 EUR)",
        "line item added: Spare units (5 x 310.00 EUR)",
        "payment terms: net 30 days -> net 45 days",
        "payment schedule: Full contract value 100% at signing -> "
        "On signing 50% at signing, On acceptance 50% at acceptance",
        "delivery start: 2027-01-11 -> 2027-02-01",
    ]
    assert after.delivery_start == dt.date(2027, 2, 1)


def test_other_fields_are_named() -> None:
    changes = changed_fields(
        acme(), acme(title="Acme fleet telematics, phase 1", non_standard_terms=True, notes="")
    )
    assert changes == [
        "non-standard terms: no -> yes",
        "title: Acme Logistics fleet telematics rollout -> Acme fleet telematics, phase 1",
        "notes",
    ]
