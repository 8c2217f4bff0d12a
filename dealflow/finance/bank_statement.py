"""Importing a bank statement (CSV): each incoming line is matched to its invoice by the
invoice number in its reference, and applied once, however often the file is imported.

The file is checked whole before anything is applied: a malformed line stops the import
with every problem listed by line number. Lines that are well formed but match no
invoice are reported, not applied, and do not stop the others.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dealflow.finance.payments import (
    DuplicatePayment,
    LookAlikePayment,
    PaymentDetails,
    PaymentError,
    PaymentResult,
    parse_amount,
)
from dealflow.finance.payments import apply_payment as apply_to_invoice
from dealflow.infra.db import session_scope
from models.tables import Invoice

REQUIRED = ("date", "amount", "reference")
OPTIONAL = ("currency", "transaction_id", "counterparty")
INVOICE_NUMBER = re.compile(r"\bINV-[A-Z0-9][A-Z0-9-]*-\d{2}\b", re.IGNORECASE)


class StatementError(ValueError):
    """The file cannot be imported as it is; ``problems`` lists each with its line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class StatementLine:
    line: int
    date: dt.date
    amount: Decimal
    reference: str
    currency: str | None
    key: str  # the line's fingerprint: the bank's transaction id, or its content


@dataclass
class ImportReport:
    applied: list[tuple[int, PaymentResult]] = field(default_factory=list)
    already_imported: list[int] = field(default_factory=list)
    unmatched: list[tuple[int, str]] = field(default_factory=list)
    not_receipts: list[int] = field(default_factory=list)

    @property
    def settled_deals(self) -> list[str]:
        return sorted({result.deal_id for _, result in self.applied if result.deal_settled})

    def summary(self) -> str:
        lines = [
            f"{len(self.applied)} payment(s) applied, {len(self.already_imported)} line(s) "
            f"already imported, {len(self.unmatched)} not matched, "
            f"{len(self.not_receipts)} outgoing line(s) ignored."
        ]
        lines += [f"  line {n}: {result.describe()}" for n, result in self.applied]
        lines += [f"  line {n}: not matched: {why}" for n, why in self.unmatched]
        return "\n".join(lines)


def _date(text: str) -> dt.date:
    text = text.strip()
    for form in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(text, form).date()
        except ValueError:
            continue
    raise ValueError(f"not a date (YYYY-MM-DD or DD.MM.YYYY): {text!r}")


def _amount(text: str) -> Decimal:
    try:
        return parse_amount(text)
    except PaymentError as exc:
        raise ValueError(str(exc)) from exc


def parse_statement(text: str, source: str) -> list[StatementLine]:
    """Every line of the statement, or StatementError listing every malformed one."""
    if "\x00" in text:
        # PostgreSQL stores no NUL: refused whole, before a line of it is applied.
        raise StatementError(
            [
                f"{source}: the file holds NUL characters, so it is not UTF-8 text (a "
                "spreadsheet saved as 'Unicode text' is UTF-16): save it as CSV, UTF-8"
            ]
        )
    try:
        first_line = text.split("\n", 1)[0].split("\r", 1)[0]
        dialect = csv.Sniffer().sniff(first_line, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    # newline="": a bare carriage return ends a line (old Mac exports) instead of failing
    reader = csv.DictReader(io.StringIO(text, newline=""), dialect=dialect)
    try:
        return _parse_rows(reader, source)
    except csv.Error as exc:  # a field over the csv module's size limit, for one
        # line_num counts the lines read before the one that failed
        problem = f"{source}: line {reader.line_num + 1}: not CSV: {exc}"
        raise StatementError([problem]) from exc


def _parse_rows(reader: csv.DictReader[str], source: str) -> list[StatementLine]:
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise StatementError(
            [
                f"{source}: line 1: missing column(s) {', '.join(missing)} "
                f"(needs {', '.join(REQUIRED)}; optional {', '.join(OPTIONAL)})"
            ]
        )
    reader.fieldnames = header
    lines: list[StatementLine] = []
    problems: list[str] = []
    seen: Counter[str] = Counter()
    for number, row in enumerate(reader, start=2):
        values = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if not any(values.values()):
            continue
        line_problems = []
        try:
            day = _date(values["date"])
        except ValueError as exc:
            line_problems.append(f"date: {exc}")
        try:
            amount = _amount(values["amount"])
        except ValueError as exc:
            line_problems.append(f"amount: {exc}")
        currency = values.get("currency") or None
        if currency and re.fullmatch(r"[A-Za-z]{3}", currency) is None:
            line_problems.append(f"currency: not a 3-letter code: {currency!r}")
        if line_problems:
            problems += [f"{source}: line {number}: {p}" for p in line_problems]
            continue
        content = "|".join(
            [
                day.isoformat(),
                str(amount.quantize(Decimal("0.01"))),
                (currency or "").upper(),
                values["reference"],
            ]
        )
        # Two identical lines in one statement are two payments: the n-th copy has its own key.
        seen[content] += 1
        fingerprint = values.get("transaction_id") or f"{content}|{seen[content]}"
        key = "bank:" + hashlib.sha256(fingerprint.encode()).hexdigest()[:40]
        lines.append(
            StatementLine(
                number, day, amount, values["reference"], currency and currency.upper(), key
            )
        )
    if problems:
        raise StatementError(problems)
    return lines


def import_statement(path: Path, *, recorded_by: str) -> ImportReport:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise StatementError([f"{path}: cannot read the file: {exc}"]) from exc
    return import_lines(parse_statement(text, path.name), source=path.name, recorded_by=recorded_by)


def import_lines(lines: list[StatementLine], *, source: str, recorded_by: str) -> ImportReport:
    report = ImportReport()
    for line in lines:
        if line.amount <= 0:
            report.not_receipts.append(line.line)
            continue
        numbers = [n.upper() for n in INVOICE_NUMBER.findall(line.reference)]
        if not numbers:
            report.unmatched.append((line.line, f"no invoice number in {line.reference!r}"))
            continue
        try:
            with session_scope() as session:
                results = _apply_line(session, line, numbers, source, recorded_by)
        except LookAlikePayment as exc:  # typed in by hand before: finance decides
            report.unmatched.append((line.line, str(exc)))
            continue
        except DuplicatePayment:
            report.already_imported.append(line.line)
            continue
        except IntegrityError:  # imported just now by someone else
            report.already_imported.append(line.line)
            continue
        except PaymentError as exc:
            report.unmatched.append((line.line, str(exc)))
            continue
        report.applied += [(line.line, result) for result in results]
    return report


def _apply_line(
    session: Session, line: StatementLine, numbers: list[str], source: str, recorded_by: str
) -> list[PaymentResult]:
    """Split one bank line over the invoices it names, in order; the last takes the rest."""
    known = {
        number: balance
        for number, balance in session.execute(
            select(Invoice.number, Invoice.amount - Invoice.paid_amount).where(
                Invoice.number.in_(numbers)
            )
        )
    }
    unknown = [n for n in numbers if n not in known]
    if unknown:
        raise PaymentError(f"no invoice {', '.join(unknown)}")
    results = []
    left = line.amount
    for position, number in enumerate(numbers):
        last = position == len(numbers) - 1
        share = left if last else min(left, max(Decimal(known[number]), Decimal(0)))
        if share <= 0:
            continue
        details = PaymentDetails(
            invoice_number=number,
            amount=share,
            received_on=line.date,
            reference=line.reference,
            currency=line.currency,
            key=line.key if len(numbers) == 1 else f"{line.key}#{position}",
        )
        results.append(apply_to_invoice(session, details, source=source, recorded_by=recorded_by))
        left -= share
    return results
