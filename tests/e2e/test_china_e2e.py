"""A Chinese customer's deal in CNY through the real stack (issue #16's "done when"): it
is approved from the signed links in Chinese emails, each email to its Chinese-reading
people is Chinese on the wire and in the reader's mail client, its reminder falls on
China's make-up working Saturday when the clock is moved there, its dates skip the
Spring Festival's days off, and its sales manager also gets each notice, once, in a
messaging app (a local HTTP server stands in for the service, named in the matrix)."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import EmailMessage
from html import unescape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import httpx
import pytest
import yaml
from sqlalchemy import select

from dealflow.infra.db import session_scope
from dealflow.infra.records import get_approval, get_deal, timeline
from harness.mail import ACCEPTANCE_LINK, LINK, SIGNING_LINK, decide, link_in, sign, text_of, to
from harness.runs import wait_for_state
from models.tables import Invoice
from tests.conftest import MATRIX, Inbox
from tests.messaging_service import Service, running_service
from tests.support import deal_file, dealflow, prefect_http, submit

pytestmark = pytest.mark.stack

SHANGHAI = ZoneInfo("Asia/Shanghai")
TITLE = "Xinghe production line monitoring"  # examples/xinghe.json: the customer's words
MANAGER, DIRECTOR, LEGAL = (
    "zhou.min@example.com",
    "dana.whitfield@example.com",
    "lena.fischer@example.com",
)
DELIVERY, BILLING = "chen.jing@example.com", "finance@xinghe-manufacturing.example"
REP = "liu.yang@example.com"  # the sales rep of examples/xinghe.json
ROBOT = "cn-sales-manager"  # the path of 周敏's webhook on the stand-in service
CJK = re.compile(r"[\u4e00-\u9fff]")
# What the English templates say where the Chinese ones say 您好, 尊敬的, 请...
ENGLISH_WORDS = re.compile(
    r"\b(Hello|Dear|Please|Review|Approval needed|Reminder|Amount due|Due|Delivery kickoff)\b"
)


@pytest.fixture
def robot() -> Iterator[Service]:
    """The stack's matrix with a messaging-app channel for 周敏, the China team's sales
    manager, posting to a local stand-in for the service, while the test runs. The stack
    reads its own copy of the matrix at each step, as it does for delegations
    (tests/e2e/test_escalation_e2e.py)."""
    original = MATRIX.read_text(encoding="utf-8")
    with running_service() as service:
        # Her line of the matrix gains the channel; the rest stays as it is, comments too.
        with_channel, found = re.subn(
            r"^(  - \{id: zhou_min, .*)\}$",
            lambda line: f'{line[1]}, channel: "{service.url(ROBOT)}"}}',
            original,
            flags=re.MULTILINE,
        )
        assert found == 1, "周敏's line of the matrix"
        assert yaml.safe_load(with_channel)["people"]
        MATRIX.write_text(with_channel, encoding="utf-8")
        try:
            yield service
        finally:
            MATRIX.write_text(original, encoding="utf-8")


def shanghai(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 2, day, hour, minute, tzinfo=SHANGHAI)


def in_chinese(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def read_in_chinese(message: EmailMessage) -> str:
    """The plain text of ``message`` once its encoding is checked as a mail client reads
    it: the subject an RFC 2047 encoded word of UTF-8 that decodes to Chinese, both parts
    UTF-8 text (quoted-printable or base64 on the wire) in Chinese."""
    [raw_subject] = [value for name, value in message.raw_items() if name == "Subject"]
    assert raw_subject.isascii() and "=?utf-8?" in raw_subject.lower(), raw_subject
    subject = str(make_header(decode_header(raw_subject)))
    assert subject == message["Subject"] and CJK.search(subject), subject
    assert not ENGLISH_WORDS.search(subject), subject
    for subtype in ("plain", "html"):
        part = message.get_body((subtype,))
        assert part is not None, f"no {subtype} part in {subject}"
        assert part.get_content_charset() == "utf-8", (subject, part["Content-Type"])
        assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        body = payload.decode("utf-8")  # strictly: a wrong byte fails here
        assert body == part.get_content() and CJK.search(body), subject
        assert not ENGLISH_WORDS.search(body), (subject, ENGLISH_WORDS.findall(body))
        assert "CNY" not in body, f"{subject}: an amount not written in yuan"
    if message.get_body(("html",)) is not None:
        assert '<html lang="zh-Hans">' in text_of(message, "html"), subject
    return "\n".join(text_of(message).splitlines())  # SMTP carried it with CRLF line ends


def chinese_page(link: str, *words: str) -> str:
    """The page at ``link`` as a GET shows it (nothing decided): 200, in Chinese."""
    page = httpx.get(link, timeout=60)
    assert page.status_code == 200, page.text
    assert '<html lang="zh-Hans">' in page.text
    for word in words:
        assert word in page.text, word
    return page.text


def approve(link: str, gate_title: str) -> httpx.Response:
    """What the approver does with the link: opens the page, then presses 批准."""
    chinese_page(link, gate_title, "批准", "驳回", "¥1,280,000.00")
    decided = decide(link, "approve", "同意")
    assert decided.status_code == 200 and 'data-verdict="decided"' in decided.text, decided.text
    # The confirmation speaks the approver's language too, and says what happens next.
    assert '<html lang="zh-Hans">' in decided.text
    assert "<h1>决定已登记</h1>" in decided.text and "您已批准此交易，谢谢。" in decided.text
    assert "接下来由" in decided.text or "这是最后一道审批" in decided.text, decided.text
    return decided


def notices_of(service: Service) -> list[dict[str, Any]]:
    return service.posted_to(ROBOT)


def wait_for_notices(service: Service, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(notices_of(service)) < count:
        assert time.monotonic() < deadline, f"{len(notices_of(service))} notice(s), not {count}"
        time.sleep(0.2)
    return notices_of(service)


def sweep_at(moment: dt.datetime) -> list[str]:
    """What a run of the sla-sweep deployment did on a clock moved to ``moment``."""
    return dealflow("sla", "sweep", "--now", moment.isoformat()).stdout.splitlines()


def clear_of_scheduled_sweeps(margin: float = 180, patience: float = 420) -> None:
    """Until no run of the sla-sweep's own schedule (every 15 minutes, on the real clock)
    is running or due within ``margin`` seconds: one would see a gate asked in February
    as ten months late, and escalate it while the test reads it on a moved clock."""
    deadline = time.monotonic() + patience
    with prefect_http() as api:
        deployment = api.get("deployments/name/sla-sweep/sla-sweep").json()["id"]
        query = {
            "deployments": {"id": {"any_": [deployment]}},
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED", "PENDING", "RUNNING"]}}},
            "sort": "EXPECTED_START_TIME_ASC",
            "limit": 5,
        }
        while True:
            soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=margin)
            busy = [
                run
                for run in api.post("flow_runs/filter", json=query).json()
                if run["state_type"] != "SCHEDULED"
                or dt.datetime.fromisoformat(run["expected_start_time"]) < soon
            ]
            if not busy:
                return
            assert time.monotonic() < deadline, f"the sla-sweep's schedule stays busy: {busy}"
            time.sleep(2)


def manager_asked_at(deal_id: str, moment: dt.datetime) -> None:
    """The manager's gate as if it had been asked at ``moment``: the stack's clock is the
    real one, and nothing else can put a gate's request on a given day (the sla-sweep's
    own tests do the same, tests/tasks/test_sla_sweep.py)."""
    with session_scope() as session:
        row = get_approval(session, deal_id, "manager")
        assert row is not None and row.decision is None
        row.requested_at = moment.astimezone(dt.UTC)
        get_deal(session, deal_id).waiting_since = moment.astimezone(dt.UTC)


def is_day_off_in_china(day: dt.date) -> bool:
    """China's published calendar as the holidays package has it, read on its own: its
    public holidays and the weekdays given in exchange, and weekends not worked."""
    published = holidays.country_holidays("CN", years=day.year)
    if day in published.weekend_workdays:
        return False
    return day in published or day.weekday() >= 5


def net_days_into_a_holiday(today: dt.date) -> tuple[int, dt.date, str]:
    """Net payment days that make an invoice issued ``today`` (in Shanghai) fall due on
    the next Spring Festival's New Year day; that day and the holiday's name. The
    invoice is issued on the stack's real today, so the festival it crosses is the next
    one (2026's is past). A deal has at most 365 net days: in the few weeks of a year
    when the next festival is further off, it is National Day's week off instead."""
    for holiday in ("Spring Festival", "National Day"):
        for year in (today.year, today.year + 1):
            for day, name in sorted(holidays.country_holidays("CN", years=year).items()):
                if holiday in name and "observed" not in name and 2 <= (day - today).days <= 365:
                    return (day - today).days, day, holiday
    raise AssertionError(f"no Spring Festival or National Day within 365 days of {today}")


def test_a_chinese_customers_cny_deal_through_the_real_stack(
    stack: Any, inbox: Inbox, tmp_path: Path, robot: Service
) -> None:
    today = dt.datetime.now(SHANGHAI).date()
    net_days, festival, holiday = net_days_into_a_holiday(today)
    terms = {
        "net_days": net_days,
        "schedule": [
            {"label": "On signing", "percent": "30", "milestone": "signing"},
            {"label": "On delivery kickoff", "percent": "40", "milestone": "kickoff"},
            {"label": "On acceptance", "percent": "30", "milestone": "acceptance"},
        ],
    }
    # Delivery starts on Thursday 26 February 2026: the plan is due 5 working days before.
    path, deal_id = deal_file(
        tmp_path, "xinghe.json", delivery_start="2026-02-26", payment_terms=terms
    )
    run_id = submit(path)

    # 周敏 is asked in Chinese, by email and in her messaging app, with the same link.
    request = inbox.wait_for(to(MANAGER, "待审批", deal_id))
    assert request["Subject"] == f"待审批：{TITLE}（{deal_id}）- 销售经理审批"
    plain = read_in_chinese(request)
    assert plain.startswith("周敏，您好：")
    assert "¥1,280,000.00" in plain and "CNY" not in plain
    assert "请在此查看交易并批准或驳回" in plain
    link = link_in(request)
    wait_for_state(run_id, "PAUSED", key="gate-manager")
    [notice] = wait_for_notices(robot, 1)
    assert notice["title"] == request["Subject"]
    assert notice["message"].splitlines() == plain.splitlines()
    assert LINK.findall(notice["message"]) == [link]
    chinese_page(LINK.findall(notice["message"])[0], "销售经理审批", "批准", "¥1,280,000.00")
    wait_for_state(run_id, "PAUSED", key="gate-manager")  # the GET decided nothing

    # The reminder, 8 business hours after the request, on moved clocks. An ordinary
    # Saturday is no working time: asked on Friday 6 February at 16:00, 1 working hour
    # has passed by Saturday night. Saturday 14 February is worked in exchange for the
    # Spring Festival: asked on Friday 13 February at 16:00, the 8th working hour ends
    # on that Saturday at 16:00, and the reminder goes then, not on Tuesday 24 February.
    with session_scope() as session:
        row = get_approval(session, deal_id, "manager")
        assert row is not None and row.requested_at is not None
        asked, waiting_since = row.requested_at, get_deal(session, deal_id).waiting_since
    clear_of_scheduled_sweeps()
    try:
        manager_asked_at(deal_id, shanghai(6, 16))
        assert not [a for a in sweep_at(shanghai(7, 23)) if deal_id in a], "ordinary Saturday"
        manager_asked_at(deal_id, shanghai(13, 16))
        assert not [a for a in sweep_at(shanghai(14, 15, 59)) if deal_id in a], "7h59 worked"
        reminded = [a for a in sweep_at(shanghai(14, 16)) if deal_id in a]
    finally:
        with session_scope() as session:  # asked when it really was, for the other tests
            row = get_approval(session, deal_id, "manager")
            assert row is not None
            row.requested_at = asked
            get_deal(session, deal_id).waiting_since = waiting_since
    assert reminded == [f"{deal_id}/manager: reminder-1 to {MANAGER}"]
    reminder = inbox.wait_for(to(MANAGER, "提醒", deal_id))
    assert reminder["Subject"] == f"提醒：{TITLE}（{deal_id}）正在等待您的销售经理审批"
    assert read_in_chinese(reminder).startswith("周敏，您好：")
    with session_scope() as session:
        [at] = [t.at for t in timeline(session, deal_id) if t.key.startswith("gate/manager/rem")]
    assert at.astimezone(SHANGHAI) == shanghai(14, 16), "recorded on the make-up Saturday"
    [_, reminder_notice] = wait_for_notices(robot, 2)
    assert reminder_notice["title"] == reminder["Subject"]
    assert reminder_notice["message"].splitlines() == text_of(reminder).splitlines()

    # Every gate approved from the links in the emails; the director and legal serve
    # every team and read a China deal's emails in the team's language.
    approve(link, "销售经理审批")
    director = inbox.wait_for(to(DIRECTOR, "待审批", deal_id))
    assert director["Subject"] == f"待审批：{TITLE}（{deal_id}）- 销售总监审批"
    assert read_in_chinese(director).startswith("Dana Whitfield，您好：")
    approve(link_in(director), "销售总监审批")
    legal = inbox.wait_for(to(LEGAL, "待审批", deal_id))
    assert read_in_chinese(legal).startswith("Lena Fischer，您好：")
    decided = approve(link_in(legal), "法务审核")

    # The rep records the signed contract from their email, in Chinese; only then do
    # kickoff and the first invoices go out.
    signing = inbox.wait_for(to(REP, "请登记已签署的合同", deal_id))
    assert signing["Subject"] == f"请登记已签署的合同：{TITLE}（{deal_id}）"
    read_in_chinese(signing)
    signing_link = link_in(signing, SIGNING_LINK)
    chinese_page(signing_link)
    signed = sign(signing_link, signed_by="王强", document="XH-HT-2026-022.pdf")
    assert signed.status_code == 200 and "已签署的合同已登记" in signed.text, signed.text

    # The delivery plan is due 5 working days before the start, counted back over the
    # Spring Festival's days off (15-23 February) and the worked Saturday 14 February.
    kickoff = inbox.wait_for(to(DELIVERY, "交付启动", deal_id))
    assert kickoff["Subject"] == f"交付启动：{TITLE}（{deal_id}）"
    kickoff_text = read_in_chinese(kickoff)
    assert kickoff_text.startswith("陈静，您好：")
    assert "请在 2026年2月12日 前与客户确认交付计划" in kickoff_text
    assert "（即 2026年2月26日 交付开始前 5 个工作日）" in kickoff_text

    # The invoices due at signing and kickoff, in yuan, with the amount in capitals.
    for number, amount, capitals in (
        ("01", "¥384,000.00", "叁拾捌万肆仟元整"),
        ("02", "¥512,000.00", "伍拾壹万贰仟元整"),
    ):
        invoice = inbox.wait_for(to(BILLING, "发票", f"INV-{deal_id}-{number}"))
        assert invoice["Subject"] == f"发票 INV-{deal_id}-{number}：{TITLE}"
        text = read_in_chinese(invoice)
        assert text.startswith("尊敬的 Zhang Li：")
        assert f"应付金额：{amount}\n" in text and f"大写金额：{capitals}\n" in text, text
        assert f"<strong>{capitals}</strong>" in text_of(invoice, "html")
    acceptance = inbox.wait_for(to(DELIVERY, "交付验收后请登记", deal_id))
    read_in_chinese(acceptance)
    wait_for_state(run_id, "PAUSED", key="acceptance")

    # Their due date is the first working day after the Spring Festival's days off.
    with session_scope() as session:
        invoices = session.scalars(
            select(Invoice).where(Invoice.deal_id == deal_id).order_by(Invoice.sequence)
        ).all()
        issued_due = [(i.issue_date, i.due_date) for i in invoices]
    assert len(issued_due) == 2
    for issued, due in issued_due:
        assert issued in (today, today + dt.timedelta(days=1)), issued  # Shanghai's today
        lands = issued + dt.timedelta(days=net_days)
        assert festival <= lands and is_day_off_in_china(lands)
        days_off = [lands + dt.timedelta(days=n) for n in range((due - lands).days)]
        assert all(is_day_off_in_china(day) for day in days_off) and not is_day_off_in_china(due)
        named = holidays.country_holidays("CN", years=festival.year)
        assert any(holiday in str(named.get(day)) for day in days_off)
    [due] = {due for _, due in issued_due}
    for number in ("01", "02"):
        invoice = inbox.wait_for(to(BILLING, "发票", f"INV-{deal_id}-{number}"))
        assert f"到期日：{in_chinese(due)}\n" in read_in_chinese(invoice)
    page_link = re.search(r'href="([^"]+/deals/[^"]+)"', decided.text)
    assert page_link, decided.text
    deal_page = chinese_page(unescape(page_link[1]), in_chinese(due), "到期日")
    assert f"INV-{deal_id}-01" in deal_page

    # Every email of the deal is to a Chinese reader and in Chinese; 周敏's messaging
    # app got each of hers once (the request and the reminder), though the run went
    # through her gate again on each of its later passes.
    mails = inbox.matching(lambda m: f"deal/{deal_id}/" in str(m["X-Dealflow-Key"]))
    kinds = sorted({str(m["X-Dealflow-Key"]).split("/", 2)[2] for m in mails})
    assert len(mails) == len(kinds) >= 8, kinds
    for mail in mails:
        read_in_chinese(mail)
    to_manager = [m for m in mails if MANAGER in str(m["X-Envelope-To"])]
    assert sorted(n["title"] for n in notices_of(robot)) == sorted(
        str(m["Subject"]) for m in to_manager
    )
    assert len(robot.notices) == len(to_manager) == 2
    assert link_in(acceptance, ACCEPTANCE_LINK)
