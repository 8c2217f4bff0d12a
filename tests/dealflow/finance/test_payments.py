"""Recording payments and importing bank statements: partial and overpayments, nothing
applied twice, clear refusals, and a report of what could not be matched. On SQLite and
PostgreSQL; the CLI is run as a user runs it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dealflow.finance.bank_statement import StatementError, import_statement
from dealflow.finance.payments import (
    DuplicatePayment,
    PaymentDetails,
    PaymentError,
    parse_amount,
    record_payment,
)
from dealflow.finance.receivables import reopen, write_off
from dealflow.infra.db import session_scope
from dealflow.infra.records import timeline
from models.tables import Payment
from tests.finance_support import invoice, invoiced_deal
from tests.support import dealflow

pytestmark = pytest.mark.usefixtures("database_url", "inbox")
DUE = dt.date(2027, 3, 10)
PAID_ON = dt.date(2027, 3, 1)


def pay(number: str, amount: str, reference: str = "") -> str:
    result = record_payment(
        PaymentDetails(number, Decimal(amount), PAID_ON, reference),
        source="test",
        recorded_by="fiona",
    )
    return result.describe()


def payments_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Payment)) or 0


def test_partial_then_overpayment_settles_the_invoice_and_records_the_credit() -> None:
    deal_id, [number] = invoiced_deal(DUE)
    assert "balance 4,359.00 EUR (partially paid)" in pay(number, "50000.00", "T1")
    said = pay(number, "5000.00", "T2")
    assert "4,359.00 EUR applied, balance 0.00 EUR (paid)" in said
    assert "overpaid by 641.00 EUR: a credit to return" in said
    row = invoice(number)
    assert row.status == "paid" and row.paid_amount == Decimal("54359.00")
    with session_scope() as session:
        events = [t.event for t in timeline(session, deal_id) if t.key.startswith("payment/")]
    assert len(events) == 2 and "reference T2" in events[1]


def test_the_same_payment_twice_is_refused_and_changes_nothing() -> None:
    _deal, [number] = invoiced_deal(DUE)
    pay(number, "1000.00", "BANK-77")
    with pytest.raises(DuplicatePayment, match=r"already recorded .* by fiona; nothing changed"):
        pay(number, "1000.00", "BANK-77")
    assert payments_count() == 1 and invoice(number).paid_amount == Decimal("1000.00")


@pytest.mark.parametrize(
    ("number", "amount", "currency", "problem"),
    [
        ("INV-NOPE-01", "10.00", None, "there is no invoice INV-NOPE-01"),
        (None, "0", None, "the amount must be above 0"),
        (None, "-5.00", None, "the amount must be above 0"),
        (None, "1.005", None, "more than 2 decimals"),
        (None, "10.00", "USD", "is in EUR, the payment in USD"),
    ],
)
def test_a_wrong_payment_is_refused_with_the_reason(
    number: str | None, amount: str, currency: str | None, problem: str
) -> None:
    _deal, [real] = invoiced_deal(DUE)
    details = PaymentDetails(number or real, Decimal(amount), PAID_ON, currency=currency)
    with pytest.raises(PaymentError, match=problem):
        record_payment(details, source="test", recorded_by="fiona")
    assert payments_count() == 0 and invoice(real).paid_amount == 0


def statement(
    tmp_path: Path, lines: list[str], header: str = "date,amount,currency,reference"
) -> Path:
    path = tmp_path / "statement.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def test_a_statement_applies_once_and_reports_what_it_could_not_match(tmp_path: Path) -> None:
    _a, [first] = invoiced_deal(DUE)
    _b, [second] = invoiced_deal(DUE)
    path = statement(
        tmp_path,
        [
            f"2027-03-02,20000.00,EUR,Payment {first.lower()} thank you",  # line 2
            "2027-03-02,99.00,EUR,Coffee refund",  # line 3: no invoice number
            "2027-03-03,-120.00,EUR,Bank fees",  # line 4: outgoing
            f"2027-03-03,100.00,USD,{second}",  # line 5: wrong currency
            "2027-03-04,10.00,EUR,INV-GHOST-2026-01",  # line 6: unknown invoice
            f"04.03.2027,54359.00,EUR,{second}",  # line 7
            f"2027-03-02,20000.00,EUR,Payment {first.lower()} thank you",  # line 8: 2nd one
        ],
    )
    report = import_statement(path, recorded_by="fiona")
    assert [n for n, _ in report.applied] == [2, 7, 8]
    assert report.not_receipts == [4]
    reasons = dict(report.unmatched)
    assert "no invoice number" in reasons[3]
    assert "is in EUR, the payment in USD" in reasons[5]
    assert "no invoice INV-GHOST-2026-01" in reasons[6]
    assert invoice(first).paid_amount == Decimal("40000.00"), "two identical lines, two payments"
    assert invoice(second).status == "paid"

    again = import_statement(path, recorded_by="fiona")
    assert again.applied == [] and again.already_imported == [2, 7, 8]
    assert payments_count() == 3 and invoice(first).paid_amount == Decimal("40000.00")


def test_a_line_naming_two_invoices_pays_them_in_order(tmp_path: Path) -> None:
    _deal, numbers = invoiced_deal(DUE, example="globex.yaml")
    first, second = numbers[0], numbers[1]  # 72,000.00 and 96,000.00 USD
    path = statement(tmp_path, [f"2027-03-05,100000.00,USD,{first} {second}"])
    report = import_statement(path, recorded_by="fiona")
    assert len(report.applied) == 2
    assert invoice(first).status == "paid"
    assert invoice(second).paid_amount == Decimal("28000.00")


def test_a_malformed_statement_is_refused_whole_with_every_problem(tmp_path: Path) -> None:
    _deal, [number] = invoiced_deal(DUE)
    path = statement(
        tmp_path,
        [
            f"2027-03-02,100.00,EUR,{number}",
            "2027-13-02,100.00,EUR,x",
            "2027-03-02,1.234.56,EUR,y",
            "2027-03-02,5.00,EURO,z",
        ],
    )
    with pytest.raises(StatementError) as refused:
        import_statement(path, recorded_by="fiona")
    assert [p.split(": ", 2)[1] for p in refused.value.problems] == ["line 3", "line 4", "line 5"]
    assert "not a date" in refused.value.problems[0]
    assert payments_count() == 0, "nothing applied from a file with a bad line"
    missing = statement(tmp_path, ["2027-03-02,1.00"], header="date,amount")
    with pytest.raises(StatementError, match=r"line 1: missing column\(s\) reference"):
        import_statement(missing, recorded_by="fiona")


def test_a_statement_holding_a_nul_character_is_refused_whole(tmp_path: Path) -> None:
    # PostgreSQL stores no NUL: the second line failed there after the first was applied.
    _deal, [number] = invoiced_deal(DUE)
    lines = [f"2027-03-02,100.00,EUR,{number}", f"2027-03-03,5.00,EUR,{number} \x00"]
    with pytest.raises(StatementError, match="NUL characters, so it is not UTF-8 text"):
        import_statement(statement(tmp_path, lines), recorded_by="fiona")
    assert payments_count() == 0


def test_a_statement_with_carriage_returns_only_reads_line_by_line(tmp_path: Path) -> None:
    # Old spreadsheet exports end lines with a bare CR: the csv module failed on it (500).
    _deal, [number] = invoiced_deal(DUE)
    path = tmp_path / "statement.csv"
    path.write_bytes(f"date,amount,currency,reference\r2027-03-02,100.00,EUR,{number}\r".encode())
    import_statement(path, recorded_by="fiona")
    assert payments_count() == 1
    lone = tmp_path / "lone.csv"
    lone.write_bytes(b"\r0\r")
    with pytest.raises(StatementError, match=r"line 1: missing column\(s\)"):
        import_statement(lone, recorded_by="fiona")


def test_a_statement_with_a_field_over_the_csv_limit_is_refused_with_its_line(
    tmp_path: Path,
) -> None:
    _deal, [number] = invoiced_deal(DUE)
    lines = [f"2027-03-02,100.00,EUR,{number}", f"2027-03-03,5.00,EUR,{'x' * 200_000}"]
    with pytest.raises(StatementError, match="line 3: not CSV: field larger than field limit"):
        import_statement(statement(tmp_path, lines), recorded_by="fiona")
    assert payments_count() == 0


def test_finance_records_a_payment_and_imports_a_statement_from_the_cli(tmp_path: Path) -> None:
    _deal, [number] = invoiced_deal(DUE)
    done = dealflow(
        "payment",
        "record",
        "--invoice",
        number,
        "--amount",
        "1,000.00",
        "--date",
        "2026-11-02",
        "--reference",
        "SEPA-1",
        "--by",
        "fiona",
    )
    assert "1,000.00 EUR applied, balance 53,359.00 EUR (partially paid)" in done.stdout
    twice = dealflow(
        "payment",
        "record",
        "--invoice",
        number,
        "--amount",
        "1000",
        "--date",
        "2026-11-02",
        "--reference",
        "SEPA-1",
        check=False,
    )
    assert twice.returncode == 1 and "Nothing was recorded" in twice.stderr
    path = statement(tmp_path, [f"2026-11-09,53359.00,EUR,{number}"])
    imported = dealflow("payments", "import", str(path), "--by", "fiona")
    assert "1 payment(s) applied" in imported.stdout and "(paid)" in imported.stdout
    assert "already imported" in dealflow("payments", "import", str(path)).stdout
    bad = dealflow("payments", "import", str(statement(tmp_path, ["x,1,EUR,y"])), check=False)
    assert bad.returncode == 1 and "line 2: date: not a date" in bad.stderr


@pytest.mark.parametrize(
    ("written", "value"),
    [("1250.00", "1250.00"), ("1250,5", "1250.5"), ("1,250.00", "1250.00"), ("7", "7")],
)
def test_amounts_are_read_as_written(written: str, value: str) -> None:
    assert parse_amount(written) == Decimal(value)


@pytest.mark.parametrize("written", ["1.250,00", "1,5000", "12.345", "1e3", "", "ten"])
def test_ambiguous_amounts_are_refused_not_guessed(written: str) -> None:
    with pytest.raises(PaymentError, match="not an amount"):
        parse_amount(written)


def test_money_typed_in_and_then_imported_from_the_bank_applies_once(tmp_path: Path) -> None:
    _deal, [number] = invoiced_deal(DUE)
    pay(number, "5000.00", "typed")
    path = statement(tmp_path, [f"2027-03-03,5000.00,EUR,{number}"])
    report = import_statement(path, recorded_by="fiona")
    assert report.applied == []
    [(line, reason)] = report.unmatched
    assert line == 2 and "already recorded by hand by fiona" in reason
    assert invoice(number).paid_amount == Decimal("5000.00")


def test_money_imported_and_then_typed_in_is_refused_unless_finance_says_it_is_new(
    tmp_path: Path,
) -> None:
    _deal, [number] = invoiced_deal(DUE)
    import_statement(statement(tmp_path, [f"2027-03-03,5000.00,EUR,{number}"]), recorded_by="bank")
    with pytest.raises(PaymentError, match="already imported from the bank statement"):
        pay(number, "5000.00", "typed")
    record_payment(
        PaymentDetails(number, Decimal("5000.00"), PAID_ON, "typed", second_of_same_amount=True),
        source="test",
        recorded_by="fiona",
    )
    assert invoice(number).paid_amount == Decimal("10000.00")


def test_invoice_numbers_are_found_whatever_case_they_are_typed_in(tmp_path: Path) -> None:
    from tests.finance_support import invoiced_deal as seed

    deal_id, [number] = seed(DUE, deal_id="acme-lower-1")
    assert number == "INV-ACME-LOWER-1-01" and deal_id == "acme-lower-1"
    path = statement(tmp_path, ["2027-03-03,100.00,EUR,inv-acme-lower-1-01 thanks"])
    assert len(import_statement(path, recorded_by="fiona").applied) == 1


def test_a_written_off_invoice_is_settled_and_takes_no_money_until_reopened() -> None:
    _deal, [number] = invoiced_deal(DUE)
    pay(number, "50000.00")
    message, _ = write_off(number, "Customer insolvent", "fiona")
    assert message == f"{number}: 4,359.00 EUR written off."
    assert invoice(number).status == "written_off"
    with pytest.raises(PaymentError, match="written off"):
        pay(number, "10.00", "late")
    reopen(number, "fiona")
    assert invoice(number).status == "partially_paid"
