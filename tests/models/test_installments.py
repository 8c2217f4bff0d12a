"""A deal's amount split into its installments: exact to the cent, every invoice positive,
or the deal refused with a clear error before anything is stored."""

from __future__ import annotations

import json
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dealflow.intake.submit import IntakeError, load_deal_file
from models.deal import CENT, split_by_percent
from models.settings import PROJECT_ROOT
from tasks.handoff import installment_amounts


def schedules() -> st.SearchStrategy[list[Decimal]]:
    """Percentages with two decimals that add up to exactly 100."""

    def to_percents(cuts: list[int]) -> list[Decimal]:
        points = [0, *sorted(set(cuts)), 10000]
        return [Decimal(b - a) / 100 for a, b in pairwise(points) if b > a]

    return st.lists(st.integers(1, 9999), max_size=8).map(to_percents)


@given(cents=st.integers(1, 10**12), percents=schedules())
def test_the_parts_add_up_and_each_is_within_a_cent_of_its_share(
    cents: int, percents: list[Decimal]
) -> None:
    amount = Decimal(cents) * CENT
    parts = split_by_percent(amount, percents)
    assert sum(parts, Decimal(0)) == amount
    for part, percent in zip(parts, percents, strict=True):
        assert part == part.quantize(CENT)
        assert abs(part - amount * percent / 100) < CENT
        assert part >= 0


@pytest.mark.parametrize(
    ("amount", "percents", "expected"),
    [
        ("0.05", ["30", "30", "30", "10"], ["0.02", "0.02", "0.01", "0.00"]),
        ("0.01", ["50", "50"], ["0.01", "0.00"]),
        ("100.00", ["33.33", "33.33", "33.34"], ["33.33", "33.33", "33.34"]),
        ("0.04", ["30", "30", "30", "10"], ["0.01", "0.01", "0.01", "0.01"]),
    ],
)
def test_small_amounts_by_largest_remainder(
    amount: str, percents: list[str], expected: list[str]
) -> None:
    parts = split_by_percent(Decimal(amount), [Decimal(p) for p in percents])
    assert parts == [Decimal(e) for e in expected]


def deal_with(tmp_path: Path, amount: str, percents: list[str]) -> Path:
    data = json.loads((PROJECT_ROOT / "examples" / "acme.json").read_text())
    data["line_items"] = [{"description": "Tiny", "quantity": 1, "unit_price": amount}]
    data["discount_percent"] = "0"
    data["amount"] = amount
    data["payment_terms"]["schedule"] = [
        {"label": f"Part {i}", "percent": p, "milestone": "signing"}
        for i, p in enumerate(percents, start=1)
    ]
    path = tmp_path / "deal.json"
    path.write_text(json.dumps(data))
    return path


def test_a_deal_that_cannot_be_split_into_positive_cents_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IntakeError) as refused:
        load_deal_file(deal_with(tmp_path, "0.05", ["30", "30", "30", "10"]))
    [problem] = refused.value.problems
    assert "deal.json" in problem
    assert "0.05 EUR cannot be split into 4 installments of at least one cent" in problem
    assert "'Part 4' would be 0.00" in problem


def test_a_small_deal_that_can_be_split_is_taken(tmp_path: Path) -> None:
    intake = load_deal_file(deal_with(tmp_path, "0.04", ["30", "30", "30", "10"]))
    assert intake.installment_amounts() == [Decimal("0.01")] * 4


def test_installments_invoiced_by_an_earlier_release_keep_their_amounts(tmp_path: Path) -> None:
    """A deal half-invoiced under the old rounding (each share rounded half up, the last
    one the rest) still adds up when its remaining invoices are issued now."""
    intake = load_deal_file(deal_with(tmp_path, "100.05", ["33.33", "33.33", "33.34"]))
    issued = {1: Decimal("33.35"), 2: Decimal("33.35")}  # the old rounding of 33.34665
    amounts = installment_amounts(intake, issued)
    assert amounts[:2] == [Decimal("33.35"), Decimal("33.35")]
    assert sum(amounts, Decimal(0)) == Decimal("100.05")
