"""Reading deals from a spreadsheet: every bad row with its line and column, before anything."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from dealflow.infra.db import session_scope
from dealflow.intake.bulk_import import ImportPlan, check_file
from dealflow.intake.submit import IntakeError, load_deal_file, store_deal
from models.deal import DealIntake
from models.matrix import Matrix, load_matrix
from models.settings import PROJECT_ROOT, get_settings
from models.tables import Deal

EXAMPLE = PROJECT_ROOT / "examples" / "deals.csv"
EXAMPLE_DEALS = ["acme.json", "globex.yaml", "initech.json"]


@pytest.fixture
def matrix() -> Matrix:
    return load_matrix(get_settings().matrix_path)


def example_rows() -> list[dict[str, str]]:
    with EXAMPLE.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: list[dict[str, str]], delimiter: str = ",") -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]), delimiter=delimiter, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def deals_of(plan: ImportPlan) -> list[DealIntake]:
    return [deal for _, deal in plan.new]


def test_the_example_file_holds_the_example_deals(database_url: str, matrix: Matrix) -> None:
    plan = check_file(EXAMPLE, matrix)
    assert plan.problems == {}
    assert deals_of(plan) == [load_deal_file(PROJECT_ROOT / "examples" / n) for n in EXAMPLE_DEALS]
    assert [line for line, _ in plan.new] == [2, 3, 4]


def test_every_bad_row_is_reported_with_its_line_column_and_reason(
    database_url: str, matrix: Matrix, tmp_path: Path
) -> None:
    acme, globex, initech = example_rows()
    acme["notes"] = "Two lines\nof notes"  # the row spans lines 2-3: the next starts on line 4
    bad_email = {**globex, "billing_contact_email": "billing-at-globex"}
    bad_amount = {**initech, "deal_id": "INITECH-2026-008", "amount": "10000.00"}
    bad_item = {**initech, "deal_id": "INITECH-2026-009", "item1_quantity": "0", "team": "mars"}
    repeated = {**acme, "notes": ""}
    path = write_csv(tmp_path / "deals.csv", [acme, bad_email, bad_amount, bad_item, repeated])

    plan = check_file(path, matrix)
    assert sorted(plan.problems) == [2, 4, 5, 6, 7]
    assert plan.new == []
    problems = "\n".join(plan.all_problems)
    assert (
        f"{path}:4: billing_contact_email: value is not a valid email address" in problems
        and "(got 'billing-at-globex')" in problems
    )
    assert f"{path}:5: amount: 10000.00 does not match the line items" in problems
    assert f"{path}:6: item1_quantity: Input should be greater than 0" in problems
    assert f"{path}:6: team: team 'mars' is not in the matrix" in problems
    assert f"{path}:2: deal_id: ACME-2026-014 is on lines 2 and 7: one row per deal" in problems
    assert f"{path}:7: deal_id: ACME-2026-014 is on lines 2 and 7" in problems


def test_a_schedule_that_does_not_add_up_names_the_installment_columns(
    database_url: str, matrix: Matrix, tmp_path: Path
) -> None:
    _, globex, _ = example_rows()
    path = write_csv(tmp_path / "deals.csv", [{**globex, "installment3_percent": "20"}])
    [problem] = check_file(path, matrix).all_problems
    assert f"{path}:2: installment columns:" in problem and "add up to 90, not 100" in problem


def test_gaps_in_numbered_columns_name_the_cell_the_user_typed(
    database_url: str, matrix: Matrix, tmp_path: Path
) -> None:
    _, globex, _ = example_rows()
    globex.update(item3_description="Extra", item3_quantity="-1", item3_unit_price="1.00")
    globex.update(item2_description="", item2_quantity="", item2_unit_price="")
    problems = check_file(write_csv(tmp_path / "deals.csv", [globex]), matrix).all_problems
    assert any(":2: item3_quantity: Input should be greater than 0" in p for p in problems)


def test_header_mistakes_are_reported_before_any_row(matrix: Matrix, tmp_path: Path) -> None:
    rows = [
        {("discount" if k == "discount_percent" else k): v for k, v in example_rows()[0].items()}
    ]
    del rows[0]["amount"]
    with pytest.raises(IntakeError) as caught:
        check_file(write_csv(tmp_path / "deals.csv", rows), matrix)
    assert caught.value.problems == [
        f"{tmp_path / 'deals.csv'}:1: unknown column 'discount' (did you mean 'discount_percent'?)",
        f"{tmp_path / 'deals.csv'}:1: missing column 'amount'",
    ]


def test_a_row_with_more_cells_than_columns_is_refused(
    database_url: str, matrix: Matrix, tmp_path: Path
) -> None:
    path = tmp_path / "deals.csv"
    path.write_text(EXAMPLE.read_text().rstrip("\n") + ",surplus\n")
    plan = check_file(path, matrix)
    assert list(plan.problems) == [4]
    assert "extra 'surplus'" in plan.all_problems[0]


def test_semicolon_separated_files_as_spreadsheets_save_them(
    database_url: str, matrix: Matrix, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "deals.csv", example_rows(), delimiter=";")
    assert len(check_file(path, matrix).new) == 3


def test_an_excel_workbook_reads_like_the_csv(
    database_url: str, matrix: Matrix, tmp_path: Path
) -> None:
    from openpyxl import Workbook

    rows = example_rows()
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "deals"
    sheet.append(list(rows[0]))
    for row in rows:
        typed: list[object] = []
        for column, value in row.items():
            if column == "delivery_start":
                typed.append(dt.datetime.fromisoformat(value))  # as Excel stores a date
            elif column.endswith(("quantity", "unit_price", "amount")) and value:
                typed.append(float(Decimal(value)))
            else:
                typed.append(value or None)
        sheet.append(typed)
    workbook.save(tmp_path / "deals.xlsx")
    assert deals_of(check_file(tmp_path / "deals.xlsx", matrix)) == deals_of(
        check_file(EXAMPLE, matrix)
    )


def test_an_unreadable_file_says_so(matrix: Matrix, tmp_path: Path) -> None:
    (tmp_path / "deals.xlsx").write_text("not a workbook")
    with pytest.raises(IntakeError, match="not an Excel workbook"):
        check_file(tmp_path / "deals.xlsx", matrix)
    (tmp_path / "latin1.csv").write_bytes("deal_id,title\nX,Caf\xe9\n".encode("latin-1"))
    with pytest.raises(IntakeError, match="not UTF-8"):
        check_file(tmp_path / "latin1.csv", matrix)
    with pytest.raises(IntakeError, match="no such file"):
        check_file(tmp_path / "missing.csv", matrix)


def test_deals_already_stored_are_sorted_before_submitting(
    database_url: str, matrix: Matrix, tmp_path: Path
) -> None:
    acme, globex, initech = example_rows()
    store_deal(load_deal_file(PROJECT_ROOT / "examples" / "acme.json"))
    with session_scope() as session:
        deal = session.get(Deal, "ACME-2026-014")
        assert deal is not None
        deal.flow_run_id = "00000000-0000-0000-0000-000000000001"
    store_deal(load_deal_file(PROJECT_ROOT / "examples" / "initech.json"))  # run never started
    changed = {**globex, "title": "Globex, renamed"}
    store_deal(load_deal_file(PROJECT_ROOT / "examples" / "globex.yaml"))

    plan = check_file(write_csv(tmp_path / "deals.csv", [acme, changed, initech]), matrix)
    assert [d.deal_id for _, d in plan.already_submitted] == ["ACME-2026-014"]
    assert [d.deal_id for _, d in plan.new] == ["INITECH-2026-007"]
    [problem] = plan.all_problems
    assert ":3: deal_id: GLOBEX-2026-031 was already submitted with different content" in problem


def test_a_row_names_its_customers_language(
    database_url: str, matrix: Matrix, tmp_path: Path
) -> None:
    acme, globex, _ = example_rows()
    rows = [{**acme, "customer_language": "zh-CN"}, {**globex, "customer_language": "fr"}]
    plan = check_file(write_csv(tmp_path / "deals.csv", rows), matrix)
    [problem] = plan.all_problems
    assert "customer_language" in problem and "'fr' is not a supported language" in problem
    [chinese] = deals_of(plan)
    assert chinese.customer.language == "zh_Hans"
