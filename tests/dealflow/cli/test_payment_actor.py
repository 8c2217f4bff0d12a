"""`dealflow payments record` as finance runs it: a payment just like one recorded is
refused with the flag that records a genuine second one, and the person recorded is the
one given with --actor, else DEALFLOW_ACTOR, else the login name; not always `root`."""

from __future__ import annotations

import datetime as dt
import getpass
import os
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.infra.records import timeline
from models.settings import get_settings
from models.tables import Payment
from tests.finance_support import invoice, invoiced_deal
from tests.support import dealflow

DUE = dt.date(2027, 3, 10)


@pytest.fixture
def on_sqlite(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, inbox: object) -> Iterator[str]:
    monkeypatch.setenv("DEALFLOW_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("DEALFLOW_ACTOR", raising=False)
    get_settings.cache_clear()
    yield sqlite_url
    get_settings.cache_clear()


def record(number: str, *options: str, actor: str | None = None) -> tuple[int, str, str]:
    env = dict(os.environ)
    if actor is not None:
        env["DEALFLOW_ACTOR"] = actor
    result = dealflow(
        "payments",
        "record",
        *("--invoice", number, "--amount", "1000.00", "--date", "2026-11-02"),
        *("--reference", "SEPA-1"),
        *options,
        check=False,
        env=env,
    )
    return result.returncode, result.stdout, result.stderr


def recorded_by() -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(Payment.recorded_by).order_by(Payment.id)))


@pytest.mark.usefixtures("on_sqlite")
def test_a_second_identical_payment_is_refused_with_the_flag_that_records_it() -> None:
    deal_id, [number] = invoiced_deal(DUE)
    code, out, _ = record(number, actor="Fiona Berg")
    assert code == 0 and "1,000.00 EUR applied" in out

    code, _, err = record(number, actor="Fiona Berg")
    assert code == 1
    assert "already recorded" in err and "by Fiona Berg" in err
    assert "--second-payment" in err, err
    assert invoice(number).paid_amount == Decimal("1000.00"), "nothing changed"

    code, out, err = record(number, "--second-payment", "--actor", "Ole Sand", actor="Fiona Berg")
    assert code == 0, err
    assert "1,000.00 EUR applied, balance 52,359.00 EUR" in out
    assert invoice(number).paid_amount == Decimal("2000.00")
    assert recorded_by() == ["Fiona Berg", "Ole Sand"]
    with session_scope() as session:
        actors = [t.actor for t in timeline(session, deal_id) if t.key.startswith("payment/")]
    assert actors == ["Fiona Berg", "Ole Sand"]


@pytest.mark.usefixtures("on_sqlite")
def test_without_actor_or_setting_the_login_name_is_recorded() -> None:
    _deal, [number] = invoiced_deal(DUE)
    code, _, err = record(number)
    assert code == 0, err
    code, _, err = record(number, "--second-payment", "--by", "fiona")
    assert code == 0, err
    assert recorded_by() == [getpass.getuser(), "fiona"]


def test_the_help_names_the_actor_option_and_its_setting() -> None:
    out = dealflow("payments", "record", "--help", env={**os.environ, "COLUMNS": "200"}).stdout
    assert "--actor" in out and "DEALFLOW_ACTOR" in out
