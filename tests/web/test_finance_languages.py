"""The finance page speaks its user's language: the matrix's for a login that names a
person with a language (their own or their teams'), else the browser's Accept-Language;
English by default, as it always read."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from models.settings import PROJECT_ROOT, get_settings
from tests.finance_support import form_token_of, invoiced_deal

pytestmark = pytest.mark.usefixtures("database_url", "inbox")
DUE = dt.date(2027, 3, 10)


def finance_page(headers: dict[str, str] | None = None) -> httpx.Response:
    from web.app import app

    login = ("finance", get_settings().finance_logins()["finance"])
    return TestClient(app).get("/finance", auth=login, headers=headers or {})


def without_tokens(page: str) -> str:
    return re.sub(r'name="form_token" value="[^"]*"', 'name="form_token"', page)


def test_the_finance_page_reads_english_unless_the_browser_asks_for_chinese() -> None:
    _deal, numbers = invoiced_deal(DUE, "xinghe.json")
    # The login "finance" is the matrix's finance desk, which serves every team and sets
    # no language: the browser decides.
    english = finance_page().text
    assert '<html lang="en">' in english and "<h1>Finance</h1>" in english
    assert "<h2>Record a payment</h2>" in english
    assert "<h2>Open invoices (3 of 3, oldest due first)</h2>" in english
    assert ">384,000.00 CNY</td>" in english and ">2027-03-10</td>" in english
    preferred = finance_page({"Accept-Language": "en-GB,zh-CN;q=0.5"}).text
    assert without_tokens(english) == without_tokens(preferred)

    chinese = finance_page({"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}).text
    assert '<html lang="zh-Hans">' in chinese and "<h1>财务</h1>" in chinese
    assert "<title>财务 - Dealflow</title>" in chinese
    assert "<h2>未付发票（共 3 张，显示 3 张，最早到期的在前）</h2>" in chinese
    assert ">¥384,000.00</td>" in chinese and ">2027年3月10日</td>" in chinese
    assert f'data-invoice="{numbers[0]}"' in chinese
    for english_words in ("Record a payment", "Open invoices", "Collections holds", "Dispute"):
        assert english_words not in chinese


def test_a_finance_user_the_matrix_gives_chinese_reads_chinese(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = yaml.safe_load((PROJECT_ROOT / "config" / "matrix.yaml").read_text(encoding="utf-8"))
    for person in data["people"]:
        if person["id"] == "finance":
            person["language"] = "zh_Hans"
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("DEALFLOW_MATRIX_PATH", str(path))
    get_settings.cache_clear()
    from web.app import app

    page = finance_page({"Accept-Language": "en-US"})
    assert "<h1>财务</h1>" in page.text and "没有客户处于冻结状态。" in page.text

    # What the page says after a form, in the same language.
    client = TestClient(app)
    login = ("finance", get_settings().finance_logins()["finance"])
    token = form_token_of(page.text, "/finance/payments")
    answer = client.post(
        "/finance/payments",
        auth=login,
        data={
            "form_token": token,
            "invoice": "INV-NONE",
            "amount": "10.00",
            "received_on": "2999-01-01",
        },
    )
    assert answer.status_code == 400
    assert "未登记任何内容：2999年1月1日 是将来的日期。" in answer.text
