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
    assert "3. large-deal: FIRES - amount 54359.00 EUR is at least 50000 EUR" in result.stdout


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
            {"name": "big", "when": {"amount_at_least": {"EUR": 1}}, "gates": ["legal"]},
            {"name": "rest", "gates": ["manager"]},
        ]
    )
    assert (
        "routing[0] (everything): has no conditions, so the rules after it never fire: big, rest"
        in text
    )


def test_the_last_rule_must_take_every_other_deal() -> None:
    text = with_routing(
        [{"name": "big", "when": {"amount_at_least": {"EUR": 1}}, "gates": ["legal"]}]
    )
    assert "routing[0] (big): the last rule must have no conditions" in text


@pytest.mark.parametrize(
    ("when", "words"),
    [
        (
            {"amount_at_least": {"EUR": 100}, "amount_below": {"EUR": 50}},
            "amount_at_least 100 EUR is not below amount_below 50 EUR",
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


def same_number_in(currency: str, amount: str = "60000.00") -> DealIntake:
    """Initech's deal (standard terms, no discount) for ``amount`` in ``currency``."""
    return deal(
        currency=currency,
        discount_percent="0",
        line_items=[{"description": "Platform", "quantity": 1, "unit_price": amount}],
        amount=amount,
    )


def test_the_same_number_in_cny_and_eur_meets_each_currencys_threshold() -> None:
    # 60,000 EUR is a large deal; 60,000 CNY is a small one.
    assert gates_for(same_number_in("EUR")) == ("large-deal", ["manager", "director", "legal"])
    assert gates_for(same_number_in("CNY")) == ("small-standard", ["manager"])
    assert gates_for(same_number_in("CNY", "500000.00"))[0] == "large-deal"
    text = explain(load_matrix(DEFAULT), same_number_in("CNY"))
    assert "3. large-deal: no - amount 60000.00 CNY is not at least 400000 CNY" in text


def test_a_deal_in_a_currency_no_threshold_names_is_refused_with_the_rule() -> None:
    from dealflow.intake.submit import staffing_problem

    matrix = load_matrix(DEFAULT)
    with pytest.raises(MatrixError) as refused:
        matrix.route(same_number_in("JPY"))
    words = str(refused.value)
    assert "is in JPY, and routing rule routing[2] (large-deal)" in words
    assert "has amounts for CNY, EUR, USD only, none for JPY" in words
    assert staffing_problem(matrix, same_number_in("JPY")) == f"currency: {words}"
    assert "3. large-deal: CANNOT TELL - amount_at_least has amounts for" in explain(
        matrix, same_number_in("JPY")
    )
    # A rule it does not reach does not matter: non-standard terms come first.
    assert matrix.route(deal(currency="JPY", non_standard_terms=True)).rule.name == (
        "non-standard-terms"
    )


def test_a_threshold_forgetting_a_currency_the_others_name_is_reported() -> None:
    text = with_routing(
        [
            {
                "name": "big",
                "when": {"amount_at_least": {"EUR": 50000, "CNY": 400000}},
                "gates": ["legal"],
            },
            {"name": "small", "when": {"amount_below": {"EUR": 10000}}, "gates": ["manager"]},
            {
                "name": "cny-only",
                "when": {"currencies": ["CNY"], "amount_below": {"CNY": 1}},
                "gates": ["manager"],
            },
            {"name": "rest", "gates": ["manager"]},
        ]
    )
    assert (
        "routing[1] (small).when.amount_below: no amount for CNY: deals in CNY reaching this"
        in text
    )
    assert "cny-only" not in text, "a rule limited to CNY needs a CNY amount only"


def test_a_plain_amount_must_say_its_currency() -> None:
    text = with_routing(
        [
            {"name": "big", "when": {"amount_at_least": 50000}, "gates": ["legal"]},
            {"name": "rest", "gates": ["manager"]},
        ]
    )
    assert (
        "matrix.yaml: routing.0.when: Value error, amount_at_least 50000 names no currency" in text
    )
    data = yaml.safe_load(DEFAULT.read_text())
    data["routing"] = [
        {
            "name": "big-eur",
            "when": {"currencies": ["EUR"], "amount_at_least": 50000},
            "gates": ["legal"],
        },
        {"name": "rest", "gates": ["manager"]},
    ]
    [rule, _] = parse_matrix(yaml.safe_dump(data)).routing
    assert rule.when is not None and rule.when.amount_at_least == {"EUR": 50000}
    assert rule.verdict(same_number_in("CNY")) == (False, "currency CNY is not one of EUR")


def test_an_unknown_currency_in_a_threshold_is_reported_with_its_place() -> None:
    text = with_routing(
        [
            {"name": "big", "when": {"amount_at_least": {"EUX": 1}}, "gates": ["legal"]},
            {"name": "rest", "gates": ["manager"]},
        ]
    )
    assert "routing.0.when.amount_at_least.EUX.[key]: Value error, EUX is not an ISO 4217" in text
