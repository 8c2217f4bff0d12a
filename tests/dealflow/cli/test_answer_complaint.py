"""`dealflow deal answer-complaint` as customer success runs it: recorded by the deal's
customer success person unless --actor says otherwise, refused without a complaint, and
a second answer hears who answered and when (like a second `deal archive`)."""

from __future__ import annotations

import pytest

from dealflow.infra.db import session_scope
from dealflow.infra.records import timeline
from models import keys
from tasks.satisfaction import record_survey_answer
from tests.dealflow.cli.test_repurchase import on_sqlite, stored
from tests.support import dealflow

KAI = "kai.brennan@example.com"  # customer_success, every team
JONAS = "jonas.weber@acme-logistics.example"
__all__ = ["on_sqlite"]  # the fixture


@pytest.mark.usefixtures("on_sqlite")
def test_the_answer_is_customer_successs_and_a_second_one_is_told_it_was_answered() -> None:
    deal_id = stored()
    early = dealflow("deal", "answer-complaint", deal_id, "--answer", "Sorry", check=False)
    assert early.returncode == 1 and f"no complaint is open for {deal_id}" in early.stderr

    record_survey_answer(deal_id, 2, "Late", JONAS)
    done = dealflow("deal", "answer-complaint", deal_id, "--answer", "Called them")
    assert done.stdout.strip() == f"Recorded the answer to the complaint of {deal_id}."
    again = dealflow(
        "deal", "answer-complaint", deal_id, "--answer", "Other", "--actor", "x@example.com"
    )
    assert again.returncode == 0
    assert again.stdout.startswith(
        f"The complaint of {deal_id} was already answered by {KAI} at "
    ), again.stdout
    assert again.stdout.strip().endswith("UTC; nothing was changed.")
    with session_scope() as session:
        [entry] = [t for t in timeline(session, deal_id) if t.key == keys.COMPLAINT_ANSWERED]
    assert (entry.actor, entry.comment) == (KAI, "Called them")
