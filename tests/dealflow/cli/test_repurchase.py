"""`dealflow deal repurchase` as the sales rep runs it: refused with a clear message
before the deal is paid, for no such deal and without a note; recorded once, and a
second record hears who recorded it and when."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from dealflow.infra.db import session_scope
from dealflow.infra.records import add_transition, get_deal, timeline
from dealflow.intake.submit import load_deal_file, store_deal
from models import keys
from models.settings import PROJECT_ROOT, get_settings
from tests.support import dealflow

REP = "sam.rivera@example.com"


@pytest.fixture
def on_sqlite(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DEALFLOW_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    yield sqlite_url
    get_settings.cache_clear()


def stored() -> str:
    intake = load_deal_file(PROJECT_ROOT / "examples" / "acme.json")
    deal_id = f"C{uuid.uuid4().hex[:8].upper()}-ACME"
    store_deal(intake.model_copy(update={"deal_id": deal_id}))
    return deal_id


def mark_paid(deal_id: str) -> None:
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        add_transition(session, deal, key=keys.CLOSED, stage="closed", event="Paid", actor="x")


@pytest.mark.usefixtures("on_sqlite")
def test_the_conversation_is_recorded_once_and_only_on_a_paid_deal() -> None:
    deal_id = stored()
    early = dealflow("deal", "repurchase", deal_id, "--note", "Too early", check=False)
    assert early.returncode == 1
    assert f"Nothing was recorded: {deal_id} is not paid yet" in early.stderr, early.stderr
    missing = dealflow("deal", "repurchase", "NO-SUCH-DEAL", "--note", "x", check=False)
    assert missing.returncode == 1 and "Nothing was recorded:" in missing.stderr

    mark_paid(deal_id)
    blank = dealflow("deal", "repurchase", deal_id, "--note", "  ", check=False)
    assert blank.returncode == 1 and "(--note)" in blank.stderr, blank.stderr
    unsaid = dealflow("deal", "repurchase", deal_id, check=False)
    assert unsaid.returncode == 2 and "--note" in unsaid.stderr, "a note is required"

    done = dealflow("deal", "repurchase", deal_id, "--note", "Wants a second line in Q3")
    assert done.stdout.strip() == f"Recorded the repurchase conversation of {deal_id}."
    again = dealflow(
        "deal", "repurchase", deal_id, "--note", "Other", "--actor", "mara.keller@example.com"
    )
    assert again.stdout.startswith(
        f"The repurchase conversation of {deal_id} was already recorded by {REP} at "
    ), again.stdout
    assert again.stdout.strip().endswith("UTC; nothing was changed.")
    with session_scope() as session:
        [entry] = [t for t in timeline(session, deal_id) if t.key == keys.REPURCHASE_RECORDED]
    assert (entry.actor, entry.comment) == (REP, "Wants a second line in Q3")
