"""The dunning ladder on a clock the test moves: each level at its day, once per invoice,
to the right people; catch-up without a burst; payments, disputes and holds respected;
two checks at once; SMTP down halfway. On SQLite and PostgreSQL, with real SMTP."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, insert, select

from dealflow.finance.payments import PaymentDetails, record_payment
from dealflow.finance.receivables import clear_hold, dispute_invoice, resolve_dispute
from dealflow.infra.db import session_scope
from dealflow.infra.records import timeline
from models.settings import PROJECT_ROOT, get_settings
from models.tables import CollectionHold, DunningLetter, Invoice, SentMessage
from tasks.dunning import apply_dunning_ladder
from tests.conftest import MATRIX, Inbox
from tests.finance_support import BILLING, REP, invoice, invoiced_deal

pytestmark = pytest.mark.usefixtures("database_url")
DUE = dt.date(2027, 3, 10)  # a Wednesday


def day(offset: int, hour: int = 9) -> dt.datetime:
    """``offset`` days after the due date, at ``hour`` UTC."""
    return dt.datetime.combine(DUE + dt.timedelta(days=offset), dt.time(hour), dt.UTC)


def check(offset: int) -> dict[str, int]:
    return dict(apply_dunning_ladder.fn(day(offset)).by_level)


def letters_for(inbox: Inbox, number: str) -> list[Any]:
    return inbox.matching(lambda m: number in str(m["Subject"]) or number in _body(m))


def _body(message: Any) -> str:
    return str(message.get_body(preferencelist=("plain",)).get_content())


def mine(inbox: Inbox, number: str, to: str) -> list[Any]:
    return [
        m
        for m in inbox.matching(lambda m: to in str(m["X-Envelope-To"]))
        if number in _body(m) and str(m["X-Dealflow-Key"]).count("dunning")
    ]


def test_each_level_fires_on_its_day_once_to_the_people_it_names(inbox: Inbox) -> None:
    _deal, [number] = invoiced_deal(DUE)
    assert check(-4) == {}
    assert check(-3) == {"friendly": 1}
    assert check(0) == {} and check(-1) == {}, "each level once"
    assert check(1) == {"reminder": 1}
    assert check(6) == {}
    assert check(7) == {"rep-and-finance": 1}
    assert check(14) == {}
    assert check(15) == {"manager": 1}
    assert check(30) == {"collections": 1}
    assert check(45) == {} and check(400) == {}

    customer = mine(inbox, number, BILLING)
    assert [str(m["Subject"]) for m in customer] == [
        f"Reminder: invoice {number} is due on 2027-03-10",
        f"Payment reminder: invoice {number} is 1 day overdue",
    ]
    assert "54,359.00 EUR" in _body(customer[1])
    # Greeted by name, as the invoice greeted them, the name read from the stored deal.
    assert [_body(letter).splitlines()[0] for letter in customer] == ["Dear Petra Schulz,"] * 2
    assert len(mine(inbox, number, REP)) == 1
    assert len(mine(inbox, number, "finance@example.com")) == 1
    assert len(mine(inbox, number, "mara.keller@example.com")) == 1, "the team's manager"
    collections = mine(inbox, number, "dana.whitfield@example.com")
    assert len(collections) == 1 and "collections hold" in _body(collections[0])
    assert len(mine(inbox, number, "lena.fischer@example.com")) == 1
    with session_scope() as session:
        hold = session.get(CollectionHold, "Acme Logistics GmbH")
    assert hold is not None and hold.cleared_at is None and number in hold.reason
    assert invoice(number).dunning_level == "collections"


def test_a_missed_level_is_caught_up_with_the_highest_level_only(inbox: Inbox) -> None:
    deal_id, [number] = invoiced_deal(DUE)
    assert check(16) == {"manager": 1}, "no check ran for 16 days"
    assert mine(inbox, number, BILLING) == [], "no burst of the customer's earlier letters"
    assert mine(inbox, number, REP) == []
    assert len(mine(inbox, number, "mara.keller@example.com")) == 1
    with session_scope() as session:
        events = [t.event for t in timeline(session, deal_id) if t.key.startswith("dunning/")]
    assert len(events) == 1 and "15 days overdue" in events[0]


def test_a_partial_payment_keeps_the_invoice_in_the_ladder_at_its_level(inbox: Inbox) -> None:
    _deal, [number] = invoiced_deal(DUE)
    assert check(7) == {"rep-and-finance": 1}
    record_payment(
        PaymentDetails(number, Decimal("50000.00"), DUE + dt.timedelta(days=8)),
        source="test",
        recorded_by="fiona",
    )
    assert invoice(number).status == "partially_paid"
    assert check(10) == {}, "the level reached stays reached"
    assert check(15) == {"manager": 1}
    [manager_mail] = mine(inbox, number, "mara.keller@example.com")
    assert "4,359.00 EUR open" in _body(manager_mail)


def test_a_payment_before_the_check_stops_the_next_level(inbox: Inbox) -> None:
    _deal, [number] = invoiced_deal(DUE)
    assert check(7) == {"rep-and-finance": 1}
    record_payment(
        PaymentDetails(number, Decimal("54359.00"), DUE + dt.timedelta(days=9)),
        source="test",
        recorded_by="fiona",
    )
    assert invoice(number).status == "paid"
    assert check(15) == {} and check(31) == {}
    assert mine(inbox, number, "mara.keller@example.com") == []


def test_a_disputed_invoice_leaves_the_ladder_until_the_dispute_is_resolved(
    inbox: Inbox,
) -> None:
    _deal, [number] = invoiced_deal(DUE)
    assert check(1) == {"reminder": 1}
    dispute_invoice(number, "Licence count is wrong", "fiona")
    assert check(7) == {} and check(15) == {}
    resolve_dispute(number, "fiona")
    assert check(16) == {"manager": 1}, "back at the highest level due, no burst"
    assert mine(inbox, number, REP) == []


def test_a_customer_on_hold_is_out_of_the_ladder_until_the_hold_is_cleared(
    inbox: Inbox,
) -> None:
    _first, [old] = invoiced_deal(DUE, customer="Held Corp")
    _second, [new] = invoiced_deal(DUE + dt.timedelta(days=20), customer="Held Corp")
    assert check(30) == {"collections": 1, "rep-and-finance": 1}
    assert invoice(old).dunning_level == "collections"
    assert check(40) == {}, "the hold stops the other invoice's 15-day level"
    clear_hold("Held Corp", "fiona")
    assert check(41) == {"manager": 1}
    assert invoice(new).dunning_level == "manager"


def test_a_cleared_hold_is_placed_again_when_another_invoice_reaches_collections(
    inbox: Inbox,
) -> None:
    _first, [old] = invoiced_deal(DUE, customer="Held Again Ltd")
    _second, [new] = invoiced_deal(DUE + dt.timedelta(days=20), customer="Held Again Ltd")
    _other, [elsewhere] = invoiced_deal(DUE, customer="Other Late Payer")
    assert check(30) == {"collections": 2, "rep-and-finance": 1}
    clear_hold("Held Again Ltd", "fiona")
    assert check(50) == {"collections": 1}
    assert invoice(new).dunning_level == "collections"
    with session_scope() as session:
        holds = {h.customer_name: h for h in session.scalars(select(CollectionHold))}
    assert holds["Held Again Ltd"].cleared_at is None and new in holds["Held Again Ltd"].reason
    assert (
        holds["Other Late Payer"].cleared_at is None
        and elsewhere in holds["Other Late Payer"].reason
    )
    assert invoice(old).dunning_level == "collections"


def test_two_checks_at_once_send_each_level_once(inbox: Inbox) -> None:
    numbers = [invoiced_deal(DUE)[1][0] for _ in range(12)]
    results: list[dict[str, int]] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        results.append(check(8))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.get("rep-and-finance", 0) for r in results) == 12, results
    with session_scope() as session:
        letters = session.scalar(select(func.count()).select_from(DunningLetter))
        unsent = session.scalar(
            select(func.count()).select_from(SentMessage).where(SentMessage.status != "sent")
        )
    assert letters == 12 and unsent == 0
    rep_mails = [m for m in inbox.matching(lambda m: REP in str(m["X-Envelope-To"]))]
    listed = Counter(n for m in rep_mails for n in numbers if n in _body(m))
    assert listed == dict.fromkeys(numbers, 1), "each invoice told to the rep once"


def test_letters_held_back_by_smtp_go_out_once_with_the_next_check(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    _deal, [number] = invoiced_deal(DUE)
    smtp_port = get_settings().smtp_port
    monkeypatch.setenv("DEALFLOW_SMTP_PORT", "9")  # nothing listens there
    get_settings.cache_clear()
    summary = apply_dunning_ladder.fn(day(1))
    assert summary.by_level == {"reminder": 1} and summary.emails_sent == 0
    assert mine(inbox, number, BILLING) == []
    monkeypatch.setenv("DEALFLOW_SMTP_PORT", str(smtp_port))
    get_settings.cache_clear()
    again = apply_dunning_ladder.fn(day(2))
    assert again.escalated == 0, "the level was claimed by the first check"
    from tasks.mailer import resend_failed

    resend_failed()
    resend_failed()
    assert len(mine(inbox, number, BILLING)) == 1


def test_a_letter_queued_before_a_payment_is_never_sent(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    _deal, [number] = invoiced_deal(DUE)
    smtp_port = get_settings().smtp_port
    monkeypatch.setenv("DEALFLOW_SMTP_PORT", "9")  # SMTP is down during the check
    get_settings.cache_clear()
    assert check(1) == {"reminder": 1}
    monkeypatch.setenv("DEALFLOW_SMTP_PORT", str(smtp_port))
    get_settings.cache_clear()
    record_payment(
        PaymentDetails(number, Decimal("54359.00"), DUE), source="test", recorded_by="fiona"
    )
    from tasks.mailer import resend_failed

    assert resend_failed() == []
    assert mine(inbox, number, BILLING) == [], "no reminder to a customer who paid"
    with session_scope() as session:
        row = session.scalar(select(SentMessage).where(SentMessage.kind == "dunning"))
    assert row is not None and row.status == "cancelled" and "paid now" in str(row.last_error)


def test_an_invoice_stays_in_a_ladder_that_lost_a_level(
    inbox: Inbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _deal, [number] = invoiced_deal(DUE)
    assert check(15) == {"manager": 1}
    matrix = yaml.safe_load(MATRIX.read_text())
    matrix["dunning"]["levels"] = matrix["dunning"]["levels"][1:]  # no friendly reminder
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(matrix))
    monkeypatch.setenv("DEALFLOW_MATRIX_PATH", str(path))
    get_settings.cache_clear()
    assert check(20) == {}
    assert check(30) == {"collections": 1}
    assert invoice(number).dunning_level == "collections"
    get_settings.cache_clear()


def test_business_day_ladder_skips_weekends_and_holidays(
    inbox: Inbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    matrix = yaml.safe_load(MATRIX.read_text())
    matrix["dunning"]["business_days"] = True
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(matrix))
    monkeypatch.setenv("DEALFLOW_MATRIX_PATH", str(path))
    get_settings.cache_clear()
    invoiced_deal(dt.date(2026, 4, 2))  # Thursday before Easter, Berlin
    easter = dt.datetime(2026, 4, 6, 12, tzinfo=dt.UTC)  # Easter Monday
    # Four calendar days late, but Good Friday, the weekend and Easter Monday do not count;
    # and a reminder "before the due date" is never sent after it.
    assert dict(apply_dunning_ladder.fn(easter).by_level) == {}
    tuesday = dt.datetime(2026, 4, 7, 12, tzinfo=dt.UTC)
    assert dict(apply_dunning_ladder.fn(tuesday).by_level) == {"reminder": 1}
    get_settings.cache_clear()


def test_a_check_killed_halfway_loses_no_letter_and_repeats_none(inbox: Inbox) -> None:
    deal_id, [first] = invoiced_deal(DUE)
    template = invoice(first)
    with session_scope() as session:
        session.execute(
            insert(Invoice),
            [
                {
                    "deal_id": deal_id,
                    "number": f"INV-{deal_id}-K{n:04d}",
                    "sequence": 100 + n,
                    "label": "Bulk",
                    "milestone": "signing",
                    "amount": Decimal("100.00"),
                    "currency": "EUR",
                    "issue_date": template.issue_date,
                    "due_date": DUE,
                    "status": "open",
                    "billing_email": BILLING,
                    "customer_name": template.customer_name,
                    "created_at": template.created_at,
                }
                for n in range(1099)
            ],
        )
    before = len(inbox.messages)
    child = subprocess.Popen(
        [sys.executable, "-c", f"{KILLED_CHECK}({day(1).isoformat()!r}))"], cwd=PROJECT_ROOT
    )
    deadline = time.monotonic() + 120
    while len(inbox.messages) - before < 200 and child.poll() is None:
        assert time.monotonic() < deadline, "the check sent nothing"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)  # halfway through sending the first batch's letters
    child.wait()
    apply_dunning_ladder.fn(day(1))
    from dealflow.infra.clock import utcnow
    from tasks.mailer import resend_failed
    from tasks.outbox_claims import CLAIM_LEASE

    resend_failed(now=utcnow() + CLAIM_LEASE + dt.timedelta(seconds=1))  # the one in flight
    received = Counter(
        str(m["X-Dealflow-Key"])
        for m in inbox.messages[before:]
        if "dunning" in str(m["X-Dealflow-Key"])
    )
    with session_scope() as session:
        letters = session.scalar(select(func.count()).select_from(DunningLetter))
    assert letters == 1100
    assert len(received) == 1100, "every letter arrived"
    repeated = [key for key, count in received.items() if count > 1]
    assert len(repeated) <= 1, f"at most the one in flight at the kill: {repeated}"


KILLED_CHECK = (
    "import datetime as dt; from tasks.dunning import apply_dunning_ladder; "
    "apply_dunning_ladder.fn(dt.datetime.fromisoformat"
)
