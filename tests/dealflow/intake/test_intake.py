"""Bad deals are refused with the field and the reason, and nothing is stored or started."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dealflow.infra.db import session_scope
from dealflow.intake.submit import (
    DealConflict,
    IntakeError,
    load_deal_file,
    payload_hash,
    store_deal,
)
from models.settings import PROJECT_ROOT, get_settings
from models.tables import Deal, StageTransition

EXAMPLES = sorted(
    p for p in (PROJECT_ROOT / "examples").iterdir() if p.suffix in {".json", ".yaml", ".yml"}
)


def write(tmp_path: Path, data: object, name: str = "deal.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else str(data))
    return path


def acme() -> dict:
    return json.loads((PROJECT_ROOT / "examples" / "acme.json").read_text())


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_shipped_example_is_valid(example: Path) -> None:
    assert load_deal_file(example).deal_id


def problems_for(tmp_path: Path, data: dict) -> list[str]:
    with pytest.raises(IntakeError) as caught:
        load_deal_file(write(tmp_path, data))
    return caught.value.problems


@pytest.mark.parametrize("code", ["XYZ", "ABC", "EUX"])
def test_a_currency_must_be_an_iso_4217_code(tmp_path: Path, code: str) -> None:
    data = acme()
    data["currency"] = code
    problems = problems_for(tmp_path, data)
    assert any(f"currency: {code} is not an ISO 4217 currency code" in p for p in problems)


def test_iso_4217_codes_pass_and_a_stored_deal_is_read_as_it_was(tmp_path: Path) -> None:
    from dealflow.infra.records import intake_of
    from models.tables import Deal as DealRow

    for code in ("EUR", "USD", "CNY", "JPY", "CHF"):
        data = acme()
        data["currency"] = code
        assert load_deal_file(write(tmp_path, data)).currency == code
    data = acme()
    data["currency"] = "XYZ"  # accepted before codes were checked
    assert intake_of(DealRow(payload=data)).currency == "XYZ"


def test_a_huge_rejected_value_is_quoted_short_with_its_length(tmp_path: Path) -> None:
    data = acme()
    data["currency"] = "E" * 5_000_000
    data["customer"]["billing_contact"]["email"] = "x" * 100_000
    problems = problems_for(tmp_path, data)
    assert len("\n".join(problems)) < 1000, "a refusal does not send the input back"
    assert any("currency" in p and "(5,000,000 characters)" in p for p in problems), problems
    assert any("email" in p and "(100,000 characters)" in p for p in problems), problems


def test_field_errors_name_the_file_the_field_and_the_value(tmp_path: Path) -> None:
    data = acme()
    data["customer"]["billing_contact"]["email"] = "accounts-at-acme"
    data["currency"] = "euro"
    data["line_items"][0]["quantity"] = 0
    problems = problems_for(tmp_path, data)
    assert any(
        "deal.json: customer.billing_contact.email:" in p and "'accounts-at-acme'" in p
        for p in problems
    ), problems
    assert any("currency:" in p and "'euro'" in p for p in problems), problems
    assert any("line_items.0.quantity:" in p and "greater than 0" in p for p in problems), problems


def test_an_amount_that_does_not_match_the_line_items_is_refused(tmp_path: Path) -> None:
    data = acme()
    data["amount"] = "60000.00"
    [problem] = problems_for(tmp_path, data)
    assert "deal.json: amount: 60000.00 does not match the line items" in problem
    assert "less 5% discount is 54359.00" in problem


def test_payment_schedule_must_add_up_to_100(tmp_path: Path) -> None:
    data = acme()
    data["payment_terms"]["schedule"] = [
        {"label": "Signing", "percent": "30", "milestone": "signing"},
        {"label": "Kickoff", "percent": "40", "milestone": "kickoff"},
    ]
    [problem] = problems_for(tmp_path, data)
    assert "payment_terms:" in problem and "add up to 70, not 100" in problem


def test_unknown_fields_are_refused_not_ignored(tmp_path: Path) -> None:
    data = acme()
    data["discount"] = "5"
    assert any(
        "discount: Extra inputs are not permitted" in p for p in problems_for(tmp_path, data)
    )


def test_malformed_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "deal_id": "X-1",\n  "title": \n}')
    with pytest.raises(IntakeError, match=r"broken.json:4:1: not valid JSON"):
        load_deal_file(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IntakeError, match="cannot read: No such file"):
        load_deal_file(tmp_path / "nope.yaml")


def test_cli_refuses_a_bad_deal_and_stores_nothing(tmp_path: Path, sqlite_url: str) -> None:
    from tests.support import dealflow

    data = acme()
    data["team"] = "apac"
    import os

    os.environ["DEALFLOW_DATABASE_URL"] = sqlite_url
    try:
        result = dealflow("deal", "submit", str(write(tmp_path, data)), check=False)
    finally:
        del os.environ["DEALFLOW_DATABASE_URL"]
    assert result.returncode == 1
    assert "The deal was not submitted" in result.stderr
    assert "team: team 'apac' is not in the matrix (known teams: cn, emea, nam)" in result.stderr
    with session_scope(sqlite_url) as session:
        assert session.scalar(select(func.count()).select_from(Deal)) == 0


def test_storing_is_idempotent_and_a_changed_deal_is_a_conflict(database_url: str) -> None:
    intake = load_deal_file(PROJECT_ROOT / "examples" / "acme.json")
    assert store_deal(intake) is True
    assert store_deal(intake) is False
    changed = intake.model_copy(update={"notes": "different"})
    with pytest.raises(DealConflict, match="already submitted with different content"):
        store_deal(changed)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Deal)) == 1
        assert session.scalar(select(func.count()).select_from(StageTransition)) == 1


def test_field_errors_and_staffing_problems_are_reported_together(tmp_path: Path) -> None:
    from models.matrix import load_matrix

    data = acme()
    data["amount"] = "1.00"
    data["team"] = "mars"
    with pytest.raises(IntakeError) as caught:
        load_deal_file(write(tmp_path, data), load_matrix(get_settings().matrix_path))
    problems = caught.value.problems
    assert len(problems) == 2, problems
    assert "amount: 1.00 does not match" in problems[0]
    assert "team: team 'mars' is not in the matrix" in problems[1]


def test_a_title_or_name_with_a_line_break_is_refused(tmp_path: Path) -> None:
    data = acme()
    data["title"] = "Acme\nBcc: everyone@example.com"
    data["customer"]["name"] = "Acme\tLogistics"
    problems = problems_for(tmp_path, data)
    assert any("title: must be one line" in p for p in problems), problems
    assert any("customer.name: must be one line" in p for p in problems), problems


@pytest.mark.parametrize(
    ("example", "stored_by_the_release_before"),
    [
        ("acme.json", "b0b6875c150bf58e802a5ed33dfc8b7e94c004e6fc6517a811156d06b0afce32"),
        ("globex.yaml", "080189ff852b7f315b8b15e8785bb7c79ae789fe7f80c460092b3a2f8ef86970"),
    ],
)
def test_a_deal_sent_again_after_an_upgrade_is_still_the_same_deal(
    example: str, stored_by_the_release_before: str
) -> None:
    """The content hash a deal was stored under before the customer's language existed:
    a CRM's retry after the upgrade is a retry, not a conflicting deal."""
    intake = load_deal_file(PROJECT_ROOT / "examples" / example)
    assert payload_hash(intake) == stored_by_the_release_before
    in_chinese = intake.model_copy(
        update={"customer": intake.customer.model_copy(update={"language": "zh_Hans"})}
    )
    assert payload_hash(in_chinese) != stored_by_the_release_before
