"""`dealflow deal import` through the real CLI against the stack: all problems first, each
deal once, and a second import of the same file submits nothing."""

from __future__ import annotations

import csv
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dealflow.infra.db import session_scope
from dealflow.infra.records import timeline
from models.settings import PROJECT_ROOT
from models.tables import Deal
from tests.support import dealflow, runs_of_deal

pytestmark = pytest.mark.stack


def fresh_rows() -> list[dict[str, str]]:
    """The example file's deals under ids of this test's own."""
    tag = uuid.uuid4().hex[:8].upper()
    with (PROJECT_ROOT / "examples" / "deals.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["deal_id"] = f"T{tag}-{row['deal_id']}"
    return rows


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def stored(deal_ids: list[str]) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).where(Deal.id.in_(deal_ids))) or 0)


def test_a_file_with_bad_rows_lists_every_problem_and_submits_nothing(
    stack: Any, tmp_path: Path
) -> None:
    acme, globex, initech = fresh_rows()
    rows = [
        acme,
        {**globex, "billing_contact_email": "billing-at-globex"},
        initech,
        {**initech, "deal_id": f"{initech['deal_id']}-B", "amount": "9.99"},
        {**acme},
    ]
    path = write(tmp_path / "crm-export.csv", rows)

    result = dealflow("deal", "import", str(path), check=False)
    assert result.returncode == 1
    error = result.stderr
    assert "4 of 5 rows are not valid; nothing was submitted" in error
    assert f"{path}:3: billing_contact_email: value is not a valid email address" in error
    assert f"{path}:5: amount: 9.99 does not match the line items" in error
    assert f"{path}:2: deal_id: {acme['deal_id']} is on lines 2 and 6" in error
    assert "pass --skip-invalid to submit the valid rows now (1 new deal)" in error
    ids = [row["deal_id"] for row in rows]
    assert stored(ids) == 0
    assert all(runs_of_deal(deal_id) == [] for deal_id in ids)


def test_an_import_submits_each_deal_once_and_again_submits_nothing(
    stack: Any, tmp_path: Path
) -> None:
    rows = fresh_rows()
    path = write(tmp_path / "won-deals.csv", rows)
    ids = [row["deal_id"] for row in rows]

    first = dealflow("deal", "import", str(path))
    assert "3 rows: 3 new, 0 already submitted." in first.stdout
    assert "Submitted 3 of 3 new deals:" in first.stdout
    printed = dict(re.findall(r"(T\w+-[\w-]+)\s+\S+/runs/flow-run/([0-9a-f-]{36})", first.stdout))
    assert sorted(printed) == sorted(ids)
    for deal_id in ids:
        assert runs_of_deal(deal_id) == [printed[deal_id]]
    assert stored(ids) == 3
    with session_scope() as session:
        [submitted] = [t for t in timeline(session, ids[1]) if t.key == "submitted"]
    assert submitted.event.endswith("(via import of won-deals.csv, line 3)")

    again = dealflow("deal", "import", str(path))
    assert "3 rows: 0 new, 3 already submitted." in again.stdout
    assert "Nothing new to submit." in again.stdout
    assert stored(ids) == 3
    for deal_id in ids:
        assert runs_of_deal(deal_id) == [printed[deal_id]]


def test_skip_invalid_submits_the_valid_rows_and_lists_the_others(
    stack: Any, tmp_path: Path
) -> None:
    acme, globex, _ = fresh_rows()
    bad = {**globex, "currency": "dollars"}
    path = write(tmp_path / "deals.csv", [acme, bad])

    dry = dealflow("deal", "import", str(path), "--dry-run", check=False)
    assert dry.returncode == 1 and "nothing was submitted" in dry.stderr
    dry = dealflow("deal", "import", str(path), "--dry-run", "--skip-invalid", check=False)
    assert "Dry run: 1 new deal would be submitted; nothing was." in dry.stdout
    assert stored([acme["deal_id"]]) == 0

    result = dealflow("deal", "import", str(path), "--skip-invalid", check=False)
    assert result.returncode == 1  # not everything went in
    assert f"{path}:3: currency: String should match pattern" in result.stderr
    assert "Submitted 1 of 1 new deal:" in result.stdout
    assert stored([acme["deal_id"]]) == 1 and stored([bad["deal_id"]]) == 0
    assert len(runs_of_deal(acme["deal_id"])) == 1
