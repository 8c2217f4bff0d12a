"""Importing won deals from a CSV or Excel file: check every row first, then submit the new ones.

Every row is validated (the deal model, the matrix's staffing, deal ids repeated in the
file, ids already submitted with other content) before anything is stored, so that a
file with a mistake on line 40 does not leave 39 deals behind. Re-importing a file
submits only what is not submitted yet.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.intake.columns import header_problems, nest
from dealflow.intake.submit import (
    IntakeError,
    OrchestratorUnavailable,
    Submission,
    parse_deal,
    payload_hash,
    submit,
)
from models.deal import DealIntake
from models.matrix import Matrix, MatrixError
from models.settings import Settings
from models.tables import Deal

HEADER_LINE = 1


@dataclass(frozen=True)
class Row:
    line: int  # where the row starts in the file (a CSV cell may span lines)
    cells: dict[str, str]


@dataclass
class ImportPlan:
    """What a file holds, checked: the deals to submit, those already in, every problem."""

    source: str
    rows: int = 0
    new: list[tuple[int, DealIntake]] = field(default_factory=list)
    already_submitted: list[tuple[int, DealIntake]] = field(default_factory=list)
    problems: dict[int, list[str]] = field(default_factory=dict)

    def refuse(self, line: int, problems: Iterable[str]) -> None:
        self.problems.setdefault(line, []).extend(problems)

    @property
    def all_problems(self) -> list[str]:
        return [p for line in sorted(self.problems) for p in self.problems[line]]


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _read_csv(path: Path) -> list[tuple[int, list[str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IntakeError(
            [f"{path}: not UTF-8 text (byte {exc.start}): save it as 'CSV UTF-8'"]
        ) from exc
    first_line = text.split("\n", 1)[0]
    try:
        dialect: Any = csv.Sniffer().sniff(first_line, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    records, previous_end = [], 0
    try:
        for cells in reader:
            records.append((previous_end + 1, cells))
            previous_end = reader.line_num
    except csv.Error as exc:
        raise IntakeError([f"{path}:{previous_end + 1}: not valid CSV: {exc}"]) from exc
    return records


def _read_xlsx(path: Path) -> list[tuple[int, list[str]]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError) as exc:
        raise IntakeError([f"{path}: not an Excel workbook (.xlsx): {exc}"]) from exc
    try:
        sheet = workbook["deals"] if "deals" in workbook.sheetnames else workbook.worksheets[0]
        return [
            (number, [_cell_text(value) for value in values])
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1)
        ]
    finally:
        workbook.close()


def read_rows(path: Path) -> tuple[list[str], list[Row], dict[int, list[str]]]:
    """The header, the non-blank rows, and problems of rows whose cells do not fit the header."""
    if not path.is_file():
        raise IntakeError([f"{path}: no such file"])
    records = _read_xlsx(path) if path.suffix.lower() == ".xlsx" else _read_csv(path)
    filled = [(line, cells) for line, cells in records if any(c.strip() for c in cells)]
    if not filled:
        raise IntakeError([f"{path}: empty: the first row must name the columns"])
    (header_line, header), *body = filled
    columns = [name.strip().lower() for name in header]
    problems = header_problems(columns)
    if problems:
        raise IntakeError([f"{path}:{header_line}: {problem}" for problem in problems])
    rows, misfits = [], {}
    for line, cells in body:
        extra = [c for c in cells[len(columns) :] if c.strip()]
        if extra:
            misfits[line] = [
                f"{path}:{line}: {len(cells)} cells, but the header names {len(columns)} "
                f"columns (extra {extra[0]!r}): is a separator inside an unquoted cell?"
            ]
            continue
        rows.append(Row(line, dict(zip(columns, cells, strict=False))))
    return columns, rows, misfits


def check_file(path: Path, matrix: Matrix) -> ImportPlan:
    """Validate every row of ``path`` and sort the deals into new and already submitted."""
    _, rows, misfits = read_rows(path)
    plan = ImportPlan(source=str(path), rows=len(rows) + len(misfits))
    for line, problems in misfits.items():
        plan.refuse(line, problems)
    valid: dict[int, DealIntake] = {}
    for row in rows:
        flat = nest(row.cells)
        try:
            valid[row.line] = parse_deal(flat.data, f"{path}:{row.line}", matrix, flat.column_of)
        except IntakeError as exc:
            plan.refuse(row.line, exc.problems)
    _refuse_repeated_ids(plan, rows)
    _sort_against_stored(plan, {line: d for line, d in valid.items() if line not in plan.problems})
    return plan


def _refuse_repeated_ids(plan: ImportPlan, rows: list[Row]) -> None:
    lines_of: dict[str, list[int]] = {}
    for row in rows:
        deal_id = row.cells.get("deal_id", "").strip()
        if deal_id:
            lines_of.setdefault(deal_id, []).append(row.line)
    for deal_id, lines in lines_of.items():
        if len(lines) > 1:
            where = ", ".join(str(line) for line in lines[:-1]) + f" and {lines[-1]}"
            for line in lines:
                plan.refuse(
                    line,
                    [
                        f"{plan.source}:{line}: deal_id: {deal_id} is on lines {where}: one row per deal"
                    ],
                )


def _sort_against_stored(plan: ImportPlan, valid: dict[int, DealIntake]) -> None:
    ids = [deal.deal_id for deal in valid.values()]
    stored: dict[str, tuple[str, str | None, dt.datetime]] = {}
    with session_scope() as session:
        for start in range(0, len(ids), 500):
            query = select(Deal.id, Deal.payload_hash, Deal.flow_run_id, Deal.created_at).where(
                Deal.id.in_(ids[start : start + 500])
            )
            for deal_id, digest, run_id, created in session.execute(query):
                stored[deal_id] = (digest, run_id, created)
    for line, deal in sorted(valid.items()):
        if deal.deal_id not in stored:
            plan.new.append((line, deal))
            continue
        digest, run_id, created = stored[deal.deal_id]
        if digest != payload_hash(deal):
            plan.refuse(
                line,
                [
                    f"{plan.source}:{line}: deal_id: {deal.deal_id} was already submitted with "
                    f"different content on {created:%Y-%m-%d %H:%M} UTC; a submitted deal cannot "
                    "be changed: reject it and submit it under a new id"
                ],
            )
        elif run_id is None:
            plan.new.append((line, deal))  # stored by an import that stopped: start its run
        else:
            plan.already_submitted.append((line, deal))


@dataclass
class ImportOutcome:
    submitted: list[tuple[int, Submission]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the import stopped before the end


def submit_new(
    plan: ImportPlan,
    settings: Settings,
    on_submitted: Callable[[int, Submission], None] = lambda line, submission: None,
) -> ImportOutcome:
    """Submit the plan's new deals in file order. A deal refused now (another channel sent
    the same id meanwhile) is reported and the rest go on; when Prefect or the matrix
    fails, the import stops there, and running it again picks up where it stopped."""
    outcome = ImportOutcome()
    name = Path(plan.source).name
    for line, deal in plan.new:
        try:
            submission = submit(deal, settings, submitted_via=f"import of {name}, line {line}")
        except IntakeError as exc:
            outcome.problems += [f"{plan.source}:{line}: {problem}" for problem in exc.problems]
            continue
        except (OrchestratorUnavailable, MatrixError) as exc:
            outcome.stopped = f"{plan.source}:{line}: {exc}"
            break
        outcome.submitted.append((line, submission))
        on_submitted(line, submission)
    return outcome
