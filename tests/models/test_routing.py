"""Routing rules decide which gates a deal needs; mistakes in them are reported by place."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from dealflow.reports.matrix_words import explain
from models.deal import DealIntake
from models.matrix import MatrixError, load_matrix, parse_matrix
from models.settings import PROJECT_ROOT
from tests.support import dealflow

DEFAULT = PROJECT_ROOT / "config" / "matrix.yaml"


def deal(**changes: Any) -> DealIntake:
    data = json.loads((PROJECT_ROOT / "examples" / "initech.json").read_text())
    data.update(changes)
    return DealIntake.model_validate(data)


def gates_for(intake: DealIntake) -> tuple[str, list[str]]:
    route = load_matrix(DEFAULT).route(intake)
    return route.rule.name, [gate.name for gate, _ in route.steps]


def discounted(percent: str) -> DealIntake:
    # 25 seats at 420.00 less the discount: the amount must match the line items.
    total = 25 * 420 * (100 - float(percent)) / 100
    return deal(discount_percent=percent, amount=f"{total:.2f}")


def test_a_special_discount_needs_the_director() -> None:
    assert gates_for(discounted("12")) == ("special-discount", ["manager", "director", "legal"])


def test_a_deal_below_the_thresholds_skips_the_director() -> None:
    assert gates_for(discounted("8")) == ("standard", ["manager", "legal"])


def test_small_standard_deals_need_only_the_manager() -> None:
    small = deal(
        line_items=[{"description": "Seats", "quantity": 10, "unit_price": "420.00"}],
        amount="4200.00",
    )
    assert gates_for(small) == ("small-standard", ["manager"])


def test_non_standard_terms_win_over_every_later_rule() -> None:
    assert gates_for(deal(non_standard_terms=True))[0] == "non-standard-terms"


def test_explain_says_which_rule_fired_and_why_the_others_did_not() -> None:
    text = explain(load_matrix(DEFAULT), discounted("8"))
    assert "2. special-discount: no - discount 8% is not above 10%" in text
    assert "5. standard: FIRES" in text
    assert "legal      Legal review                 Lena Fischer" in text
    assert "skipped: director (rule standard)" in text


def test_the_explain_command_works_from_a_file() -> None:
    result = dealflow("matrix", "explain", str(PROJECT_ROOT / "examples" / "acme.json"))
    assert "3. large-deal: FIRES - amount 54359.00 EUR is at least 50000" in result.stdout


def with_routing(rules: list[dict[str, Any]]) -> str:
    data = yaml.safe_load(DEFAULT.read_text())
    data["routing"] = rules
    with pytest.raises(MatrixError) as caught:
        parse_matrix(yaml.safe_dump(data), "matrix.yaml")
    return str(caught.value)


def test_a_rule_naming_an_unknown_gate_is_reported() -> None:
    text = with_routing([{"name": "all", "gates": ["manager", "cfo"]}])
    assert "matrix.yaml: routing[0] (all).gates: unknown gate 'cfo'" in text


def test_rules_after_an_unconditional_rule_can_never_fire() -> None:
    text = with_routing(
        [
            {"name": "everything", "gates": ["manager"]},
            {"name": "big", "when": {"amount_at_least": 1}, "gates": ["legal"]},
            {"name": "rest", "gates": ["manager"]},
        ]
    )
    assert (
        "routing[0] (everything): has no conditions, so the rules after it never fire: big, rest"
        in text
    )


def test_the_last_rule_must_take_every_other_deal() -> None:
    text = with_routing([{"name": "big", "when": {"amount_at_least": 1}, "gates": ["legal"]}])
    assert "routing[0] (big): the last rule must have no conditions" in text


@pytest.mark.parametrize(
    ("when", "words"),
    [
        (
            {"amount_at_least": 100, "amount_below": 50},
            "amount_at_least 100 is not below amount_below 50",
        ),
        (
            {"discount_above": 20, "discount_at_most": 10},
            "discount_above 20 is not below discount_at_most 10",
        ),
        ({"teams": []}, "an empty list of teams or currencies matches nothing"),
    ],
)
def test_rules_that_can_never_fire_are_reported(when: dict[str, Any], words: str) -> None:
    text = with_routing(
        [
            {"name": "odd", "when": when, "gates": ["manager"]},
            {"name": "rest", "gates": ["manager"]},
        ]
    )
    assert f"routing[0] (odd).when: can never fire: {words}" in text


def test_an_unknown_condition_is_reported_with_its_place() -> None:
    text = with_routing(
        [
            {"name": "odd", "when": {"amount_over": 5}, "gates": ["manager"]},
            {"name": "rest", "gates": ["manager"]},
        ]
    )
    assert "matrix.yaml: routing.0.when.amount_over: Extra inputs are not permitted" in text
