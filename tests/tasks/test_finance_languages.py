"""Finance's emails speak their reader's language: the overdue-payment escalation each
person a level names reads in theirs (the China team's in Chinese), the payment check's
report to finance in each finance reader's. Real overdue invoices, the real dunning
ladder on a clock the test moves, the real outbox."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.infra.words import Words
from models import keys
from models.settings import PROJECT_ROOT, get_settings
from models.tables import SentMessage
from tasks.aging import aging_rows, compute_aging, mail_payment_check
from tasks.dunning import apply_dunning_ladder
from tests.conftest import Inbox
from tests.finance_support import invoiced_deal
from tests.tasks.test_email_languages import outbox, raw_subject, text

pytestmark = pytest.mark.usefixtures("database_url")
DUE = dt.date(2027, 3, 10)
# examples/xinghe.json: 1,280,000.00 CNY in three invoices (30%, 40%, 30%), team cn.
XINGHE = "Hangzhou Xinghe Intelligent Manufacturing Co., Ltd."


def day(offset: int) -> dt.datetime:
    """``offset`` days after the due date, at 09:00 UTC."""
    return dt.datetime.combine(DUE + dt.timedelta(days=offset), dt.time(9), dt.UTC)


def digests_to(address: str) -> list[tuple[str, EmailMessage]]:
    """The overdue-payment digests queued for ``address``: raw text and as read."""
    with session_scope() as session:
        rows = session.scalars(
            select(SentMessage.message)
            .where(SentMessage.kind == "dunning-escalation")
            .order_by(SentMessage.id)
        ).all()
    found = []
    for raw in rows:
        assert raw is not None
        message = email.message_from_string(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if message["To"] == address:
            found.append((raw, message))
    return found


def test_an_overdue_cny_invoice_escalates_in_chinese_to_the_china_team(inbox: Inbox) -> None:
    deal_id, numbers = invoiced_deal(DUE, "xinghe.json")
    assert dict(apply_dunning_ladder.fn(day(15)).by_level) == {"manager": 3}

    # 周敏, the China team's sales manager: the team speaks Simplified Chinese.
    [(raw, message)] = digests_to("zhou.min@example.com")
    subject = "逾期：3 张发票，最长逾期 15 天"
    assert raw_subject(raw).isascii() and raw_subject(raw).startswith("=?utf-8?")
    assert str(make_header(decode_header(raw_subject(raw)))) == subject
    assert message["Subject"] == subject
    plain, html = text(message), text(message, "html")
    assert plain.startswith("周敏，您好：\n\n3 张发票已达到逾期付款催收阶梯中指定您的级别：\n")
    assert (
        f"- {numbers[1]}，{XINGHE}（交易 {deal_id}）：逾期 15 天（到期日 2027年3月10日），"
        "未付 ¥512,000.00"
    ) in plain.splitlines()
    assert "请跟进该客户。" in plain
    assert '<html lang="zh-Hans">' in html
    assert "<p>周敏，您好：</p>" in html
    assert "<th" in html and ">逾期天数</th>" in html and ">级别</th>" in html
    assert ">逾期 15 天</td>" in html, "the level's Chinese title from the matrix"
    for body in (plain, html):
        assert "¥384,000.00" in body and "¥512,000.00" in body
        for words in ("Hello", "overdue", "CNY", "invoices have", "Follow up", "2027-03-10"):
            assert words not in body, words

    # The last level: collections, and the customer goes on hold. Dana serves every team
    # and sets no language of her own: on a China team deal she reads the team's.
    assert dict(apply_dunning_ladder.fn(day(30)).by_level) == {"collections": 3}
    [(_raw, message)] = digests_to("dana.whitfield@example.com")
    assert message["Subject"] == "逾期：3 张发票，最长逾期 30 天，催收冻结"
    [line] = [line for line in text(message).splitlines() if numbers[0] in line]
    assert line == (
        f"- {numbers[0]}，{XINGHE}（交易 {deal_id}）：逾期 30 天（到期日 2027年3月10日），"
        "未付 ¥384,000.00；催收；该客户现已列入催收冻结"
    )
    assert "逾期 30 天：催收 &middot; <strong>催收冻结</strong>" in text(message, "html")


def test_an_english_escalation_reads_as_it_did(inbox: Inbox) -> None:
    deal_id, [number] = invoiced_deal(DUE)
    assert dict(apply_dunning_ladder.fn(day(15)).by_level) == {"manager": 1}

    [(raw, message)] = digests_to("mara.keller@example.com")
    assert raw_subject(raw) == f"Overdue: {number} (Acme Logistics GmbH), 15 days overdue"
    plain = text(message)
    assert plain.splitlines() == [
        "Hello Mara Keller,",
        "",
        "An invoice has reached a level of the overdue-payment ladder that names you:",
        "",
        f"- {number}, Acme Logistics GmbH (deal {deal_id}): 15 days overdue "
        "(due 2027-03-10), 54,359.00 EUR open",
        "",
        "Follow up with the customer. Finance records payments with `dealflow payments record`",
        "or on the finance page; a recorded payment stops the next level.",
    ]
    html = text(message, "html")
    assert '<html lang="en">' in html
    assert ">15 days overdue</td>" in html and ">54,359.00 EUR</td>" in html


def test_a_digest_over_deals_of_two_languages_is_in_its_readers_own(inbox: Inbox) -> None:
    # finance@example.com serves every team and sets no language: a digest listing a
    # China team deal and a European one reads English; each deal's rep reads the team's.
    _acme, [acme] = invoiced_deal(DUE)
    _xinghe, numbers = invoiced_deal(DUE, "xinghe.json")
    assert dict(apply_dunning_ladder.fn(day(7)).by_level) == {"rep-and-finance": 4}

    [(_raw, finance)] = digests_to("finance@example.com")
    assert finance["Subject"] == "Overdue: 4 invoices, up to 7 days overdue"
    lines = text(finance).splitlines()
    assert f"- {acme}, Acme Logistics GmbH (deal {_acme}): 7 days overdue" in " ".join(lines)
    assert any(numbers[0] in line and "384,000.00 CNY open" in line for line in lines)
    [(_raw, rep)] = digests_to("liu.yang@example.com")
    assert rep["Subject"] == "逾期：3 张发票，最长逾期 7 天"
    [(_raw, english_rep)] = digests_to("sam.rivera@example.com")
    assert english_rep["Subject"].startswith(f"Overdue: {acme} (Acme Logistics GmbH)")


@pytest.fixture
def chinese_finance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default matrix with its finance desk reading Chinese, and a second finance
    person (Fiona) reading English."""
    data = yaml.safe_load((PROJECT_ROOT / "config" / "matrix.yaml").read_text(encoding="utf-8"))
    for person in data["people"]:
        if person["id"] == "finance":
            person["language"] = "zh_Hans"
    data["people"].append(
        {
            "id": "fiona",
            "name": "Fiona Burke",
            "email": "fiona.burke@example.com",
            "roles": ["finance"],
            "teams": ["*"],
        }
    )
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("DEALFLOW_MATRIX_PATH", str(path))
    get_settings.cache_clear()


@pytest.mark.usefixtures("chinese_finance")
def test_the_payment_check_report_reaches_each_finance_reader_in_their_language(
    inbox: Inbox,
) -> None:
    deal_id, numbers = invoiced_deal(DUE, "xinghe.json")
    summary = apply_dunning_ladder.fn(day(30))
    today = day(30).date()
    closing = [Words("%(deal)s: paid in full, closing", deal="ACME-2025-001")]

    rows = aging_rows(compute_aging.fn(today))
    context = {"today": today, "rows": rows, "summary": summary, "closing": closing}
    # The email alone: the Prefect artifacts beside it are the stack tests' (test_finance_e2e).
    mailed = mail_payment_check(today, context, summary, closing, "r1")
    assert mailed == ["finance@example.com", "fiona.burke@example.com"]

    raw, chinese = outbox(keys.payment_check_mail("r1", "zh_Hans"))
    assert chinese["To"] == "finance@example.com"
    assert raw_subject(raw).startswith("=?utf-8?")
    assert chinese["Subject"] == "2027年4月9日 付款检查：升级 3 项"
    plain = text(chinese)
    lines = plain.splitlines()
    assert lines[0] == "2027年4月9日 付款检查"
    assert "按逾期天数划分的应收未付款：" in lines
    assert (
        "  CNY：未到期 0.00 | 1-30 天 1,280,000.00 | 31-60 天 0.00 | 61-90 天 0.00 | "
        "90 天以上 0.00 | 合计 1,280,000.00"
    ) in lines
    assert "本次升级：3" in lines
    assert f"- {numbers[1]}（{XINGHE}）逾期 30 天，未付 ¥512,000.00；催收" in lines
    assert f"列入催收冻结：{XINGHE}" in lines
    assert "已付清的交易：" in lines and "- ACME-2025-001：已全额付款，正在关闭" in lines
    html = text(chinese, "html")
    assert '<html lang="zh-Hans">' in html and ">币种</th>" in html and ">合计</th>" in html
    for body in (plain, html):
        for words in ("Payment check", "Escalations made", "overdue", " open", "Paid deals"):
            assert words not in body, words

    _raw, english = outbox(keys.payment_check_mail("r1"))
    assert english["To"] == "fiona.burke@example.com"
    assert english["Subject"] == "Payment check 2027-04-09: 3 escalations"
    lines = text(english).splitlines()
    assert lines[0] == "Payment check of 2027-04-09"
    assert (
        "  CNY: current 0.00 | 1-30 1,280,000.00 | 31-60 0.00 | 61-90 0.00 | 90+ 0.00 | "
        "total 1,280,000.00"
    ) in lines
    assert f"- {numbers[1]} ({XINGHE}) is 30 days overdue, 512,000.00 CNY open; collections" in (
        lines
    )
    assert f"Put on collections hold: {XINGHE}" in lines
    assert "- ACME-2025-001: paid in full, closing" in lines
    assert deal_id
