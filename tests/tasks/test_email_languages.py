"""Each email speaks its recipient's language: the approver's for an approval request,
the customer's for an invoice. Real deals, the real tasks, the real outbox."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import re
import uuid
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.infra.deal_links import deal_page_token
from dealflow.infra.records import get_deal
from dealflow.intake.submit import store_deal
from dealflow.reports.period import ReportPeriod
from dealflow.reports.weekly import weekly_report
from models import keys
from models.deal import DealIntake
from models.matrix import load_matrix
from models.settings import PROJECT_ROOT, get_settings
from models.tables import SentMessage
from tasks.approvals import plan_approvals, request_approval
from tasks.handoff import issue_invoices
from tasks.reports import email_weekly_report
from tests.conftest import Inbox

pytestmark = pytest.mark.usefixtures("database_url")
RUN = "run"


def example(name: str, **changes: object) -> dict[str, object]:
    data = json.loads((PROJECT_ROOT / "examples" / f"{name}.json").read_text(encoding="utf-8"))
    data["deal_id"] = f"D{uuid.uuid4().hex[:8].upper()}-{name.upper()}"
    data.update(changes)
    return data


def stored(data: dict[str, object], **changes: object) -> DealIntake:
    intake = DealIntake.model_validate(data).model_copy(update=changes)
    store_deal(intake)
    with session_scope() as session:
        get_deal(session, intake.deal_id).flow_run_id = RUN
    return intake


def outbox(key: str) -> tuple[str, EmailMessage]:
    """The raw text of the email queued under ``key``, and as a mail client reads it."""
    with session_scope() as session:
        raw = session.scalars(select(SentMessage.message).where(SentMessage.key == key)).one()
    assert raw is not None
    message = email.message_from_string(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return raw, message


def text(message: EmailMessage, kind: str = "plain") -> str:
    part = message.get_body((kind,))
    assert part is not None
    return str(part.get_content())


def raw_subject(raw: str) -> str:
    head = raw.split("\n\n", 1)[0].replace("\n ", " ")
    return next(line for line in head.splitlines() if line.startswith("Subject: "))[9:]


def test_a_chinese_approver_gets_the_request_in_chinese() -> None:
    # The China team's sales manager is 周敏, whose team speaks Simplified Chinese.
    intake = stored(example("xinghe"), delivery_start=dt.date(2026, 12, 2))
    gate = plan_approvals.fn(intake.deal_id)[0]
    request_approval.fn(intake.deal_id, gate, RUN)

    raw, message = outbox(keys.gate_request_mail(intake.deal_id, "manager"))
    subject = f"待审批：{intake.title}（{intake.deal_id}）- 销售经理审批"
    # RFC 2047: the header is ASCII on the wire and decodes to the Chinese subject.
    assert raw_subject(raw).isascii() and raw_subject(raw).startswith("=?utf-8?")
    assert str(make_header(decode_header(raw_subject(raw)))) == subject
    assert message["Subject"] == subject
    assert message["To"] == "zhou.min@example.com"
    plain, html = text(message), text(message, "html")
    for body in (plain, html):
        assert "周敏，您好：" in body
        assert "¥1,280,000.00" in body
        assert "2026年12月2日" in body
        assert "请在此查看交易并批准或驳回" in body or "查看并审批" in body
        assert "Hello" not in body and "CNY" not in body
    assert '<html lang="zh-Hans">' in html
    assert "付款条件：账期 30 天；30% On signing（签约时），40%" in plain


def test_an_english_approver_gets_the_request_as_before() -> None:
    intake = stored(example("acme"))
    gate = plan_approvals.fn(intake.deal_id)[0]
    request_approval.fn(intake.deal_id, gate, RUN)

    _raw, message = outbox(keys.gate_request_mail(intake.deal_id, "manager"))
    assert (
        message["Subject"]
        == f"Approval needed: {intake.title} ({intake.deal_id}) - Sales manager approval"
    )
    plain = text(message)
    assert plain.startswith("Hello Mara Keller,\n")
    assert "Review the deal and approve or reject it here:" in plain
    assert f"{intake.amount:,.2f} EUR" in plain


def test_a_chinese_customer_gets_the_invoice_in_chinese_with_the_amount_in_capitals() -> None:
    whole = {
        "net_days": 30,
        "schedule": [{"label": "全款", "percent": "100", "milestone": "signing"}],
    }
    intake = stored(example("xinghe", payment_terms=whole))
    [number] = issue_invoices.fn(intake.deal_id)

    raw, message = outbox(keys.invoice_mail(intake.deal_id, number))
    assert raw_subject(raw).startswith("=?utf-8?")
    assert message["Subject"] == f"发票 {number}：{intake.title}"
    plain, html = text(message), text(message, "html")
    assert "尊敬的 Zhang Li：" in plain
    assert "应付金额：¥1,280,000.00" in plain
    assert "大写金额：壹佰贰拾捌万元整" in plain
    assert "<strong>壹佰贰拾捌万元整</strong>" in html
    assert "年" in plain and "Invoice" not in plain


def test_a_customer_may_speak_another_language_than_the_team() -> None:
    # A China team deal whose customer reads English, and a European deal whose reads Chinese.
    data = example("xinghe")
    data["customer"] = {**data["customer"], "language": "en"}  # type: ignore[dict-item]
    english = stored(data)
    [number] = issue_invoices.fn(english.deal_id)[:1]
    _raw, message = outbox(keys.invoice_mail(english.deal_id, number))
    assert message["Subject"] == f"Invoice {number} for {english.title}"
    assert "Amount due:     384,000.00 CNY" in text(message)
    assert "大写" not in text(message)

    data = example("acme")
    data["customer"] = {**data["customer"], "language": "zh-CN"}  # type: ignore[dict-item]
    chinese = stored(data)
    [number, *_] = issue_invoices.fn(chinese.deal_id)
    _raw, message = outbox(keys.invoice_mail(chinese.deal_id, number))
    assert message["Subject"].startswith(f"发票 {number}：")
    assert "€" in text(message)
    assert "大写" not in text(message), "capitals are for CNY amounts only"


def test_the_approval_page_speaks_the_approvers_language() -> None:
    from web.app import app

    intake = stored(example("xinghe"), delivery_start=dt.date(2026, 12, 2))
    request_approval.fn(intake.deal_id, plan_approvals.fn(intake.deal_id)[0], RUN)
    _raw, message = outbox(keys.gate_request_mail(intake.deal_id, "manager"))
    [path] = re.findall(r"https?://[^/\s]+(/approvals/\S+)", text(message))
    client = TestClient(app)

    page = client.get(path)
    assert page.status_code == 200
    assert '<html lang="zh-Hans">' in page.text
    assert "<h1>销售经理审批: " in page.text, "the matrix's Chinese title of the gate"
    for words in ("付款条件", "¥1,280,000.00", "2026年12月2日", ">批准</button>", ">驳回</button>"):
        assert words in page.text
    refused = client.post(path, data={"decision": "reject", "comment": " "})
    assert refused.status_code == 400
    assert "请说明驳回理由：销售代表会看到。" in refused.text


def test_the_deal_page_speaks_the_teams_language_unless_asked_otherwise() -> None:
    from web.app import app

    chinese, english = stored(example("xinghe")), stored(example("acme"))
    client = TestClient(app)

    def page(deal_id: str, query: str = "") -> str:
        answer = client.get(f"/deals/{deal_id}?key={deal_page_token(deal_id)}{query}")
        assert answer.status_code == 200
        return answer.text

    assert "时间线" in page(chinese.deal_id) and "Timeline" not in page(chinese.deal_id)
    assert "Timeline" in page(english.deal_id) and "时间线" not in page(english.deal_id)
    assert "Timeline" in page(chinese.deal_id, "&lang=en")
    assert "时间线" in page(english.deal_id, "&lang=zh-CN")


def test_the_weekly_report_goes_to_each_language_once(
    inbox: Inbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sales managers read it too: 周敏 of the China team in Chinese, the others in English.
    data = yaml.safe_load((PROJECT_ROOT / "config" / "matrix.yaml").read_text(encoding="utf-8"))
    data["reports"]["weekly_recipients"] = ["head_of_sales", "sales_manager"]
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("DEALFLOW_MATRIX_PATH", str(path))
    get_settings.cache_clear()
    period = ReportPeriod(dt.date(2031, 3, 3), dt.date(2031, 3, 9), "Asia/Shanghai")
    report = weekly_report(load_matrix(path), period)

    sent = email_weekly_report.fn(report)
    assert sorted(sent) == sorted(
        [
            "victor.stone@example.com",
            "mara.keller@example.com",
            "tom.alvarez@example.com",
            "zhou.min@example.com",
        ]
    )
    english = inbox.wait_for(lambda m: m["Subject"] == report.title)
    chinese = inbox.wait_for(lambda m: m["Subject"] == f"Dealflow 销售管道周报，{period.label}")
    assert "zhou.min@example.com" not in english["To"]
    assert chinese["To"] == "zhou.min@example.com"
    assert "阶段漏斗" in text(chinese) and "本期" in text(chinese)
    assert "Stage funnel" in text(english)

    def both() -> list[EmailMessage]:
        return inbox.matching(lambda m: m["Subject"] in (report.title, chinese["Subject"]))

    before = len(both())
    assert email_weekly_report.fn(report) == sent
    assert len(both()) == before, "once per period and language"
