"""The pages that answer a link speak its reader's language: the approver's when the link
names them, the browser's when Dealflow cannot trust the link to say who reads it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient

from dealflow.infra.db import session_scope
from dealflow.infra.links import sign, verify
from dealflow.infra.records import get_approval
from dealflow.infra.words import Words, sentences
from models import keys
from models.settings import get_settings
from tasks.approvals import plan_approvals, request_approval
from tests.tasks.test_email_languages import RUN, example, outbox, stored, text
from web.pages import browser_language

pytestmark = pytest.mark.usefixtures("database_url")


def approval_path(name: str) -> tuple[str, str]:
    """A deal of ``name``'s example waiting at its manager gate, and the manager's link."""
    intake = stored(example(name), delivery_start=dt.date(2026, 12, 2))
    request_approval.fn(intake.deal_id, plan_approvals.fn(intake.deal_id)[0], RUN)
    _raw, message = outbox(keys.gate_request_mail(intake.deal_id, "manager"))
    [path] = re.findall(r"https?://[^/\s]+(/approvals/\S+)", text(message))
    return intake.deal_id, path


def expired(path: str) -> str:
    base, token = path.rsplit("/", 1)
    claim = verify(token, get_settings().signing_key(), dt.datetime.now(dt.UTC))
    then = dataclasses.replace(
        claim, expires_at=int(dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp())
    )
    return f"{base}/{sign(then, get_settings().signing_key())}"


@pytest.fixture
def client() -> TestClient:
    from web.app import app

    return TestClient(app)


def test_an_expired_link_says_so_in_its_approvers_language(client: TestClient) -> None:
    _deal, chinese = approval_path("xinghe")
    _deal, english = approval_path("acme")

    page = client.get(expired(chinese))
    assert page.status_code == 410
    assert "<h1>此链接已过期</h1>" in page.text
    assert "该链接已于 2026年3月1日 00:00 UTC 过期。" in page.text
    assert '<html lang="zh-Hans">' in page.text

    page = client.get(expired(english), headers={"Accept-Language": "zh-CN"})
    assert "<h1>This link has expired</h1>" in page.text, "the link names its English reader"
    assert "It expired on 2026-03-01 00:00 UTC." in page.text


def test_a_link_nobody_signed_speaks_the_browsers_language(client: TestClient) -> None:
    _deal, path = approval_path("xinghe")
    forged = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")

    page = client.get(forged, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert page.status_code == 403 and "<h1>此链接无效</h1>" in page.text
    assert "请从邮件中重新打开链接" in page.text

    page = client.post(forged, data={"decision": "approve"})
    assert page.status_code == 403 and "<h1>This link is not valid</h1>" in page.text


def test_a_gate_already_decided_says_by_whom_in_the_approvers_language(
    client: TestClient,
) -> None:
    deal_id, path = approval_path("xinghe")
    with session_scope() as session:
        row = get_approval(session, deal_id, "manager")
        assert row is not None
        row.decision, row.decided_by, row.decided_by_name = "approved", "x@example.com", "王磊"
        row.decided_at = dt.datetime(2026, 12, 3, 9, 30, tzinfo=dt.UTC)

    page = client.get(path)
    assert "已由 王磊 于 2026年12月3日 09:30 UTC 批准。" in page.text
    answered = client.post(path, data={"decision": "reject", "comment": "太贵"})
    assert answered.status_code == 409
    assert "<h1>已有决定</h1>" in answered.text
    assert "已由 王磊 于 2026年12月3日 09:30 UTC 批准。" in answered.text
    with session_scope() as session:
        row = get_approval(session, deal_id, "manager")
        assert row is not None and row.decision == "approved", "nothing changed"


def test_an_unknown_button_is_answered_in_the_approvers_language(client: TestClient) -> None:
    _deal, path = approval_path("xinghe")
    page = client.post(path, data={"decision": "maybe"})
    assert page.status_code == 400
    assert "请使用页面上的“批准”或“驳回”按钮。" in page.text


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh_Hans"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("fr-FR,zh;q=0.5", "zh_Hans"),
        ("fr-FR,de;q=0.5", "en"),
        ("zh;q=0, en", "en"),
        ("zh-TW", "zh_Hans"),
        ("en;q=banana, zh", "zh_Hans"),
    ],
)
def test_the_browsers_first_language_dealflow_writes(header: str, language: str) -> None:
    assert browser_language({"accept-language": header} if header else {}) == language


def test_words_are_read_in_each_language_with_their_dates() -> None:
    said = Words("It expired on %(at)s.", at=dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC))
    assert str(said) == "It expired on 2026-03-01 08:00 UTC."
    assert said.in_language("zh_Hans") == "该链接已于 2026年3月1日 08:00 UTC 过期。"
    both = [said, Words("This link has expired")]
    assert sentences(both, "en") == "It expired on 2026-03-01 08:00 UTC. This link has expired"
    assert sentences(both, "zh_Hans") == "该链接已于 2026年3月1日 08:00 UTC 过期。此链接已过期"


def test_the_chinese_deal_page_names_stages_and_gates_as_the_matrix_titles_them(
    client: TestClient,
) -> None:
    from dealflow.infra.deal_links import deal_page_token

    deal_id, _path = approval_path("xinghe")
    page = client.get(f"/deals/{deal_id}?key={deal_page_token(deal_id)}")
    assert page.status_code == 200
    assert '<td data-field="stage">销售经理审批</td>' in page.text
    assert "<tr><td>销售经理审批</td>" in page.text, "the approvals table"
    english = client.get(f"/deals/{deal_id}?key={deal_page_token(deal_id)}&lang=en")
    assert '<td data-field="stage">Sales manager approval</td>' in english.text


def test_the_acceptance_page_asks_for_the_signed_report_in_the_managers_language(
    client: TestClient,
) -> None:
    from dealflow.infra.links import LinkClaim, Purpose
    from tasks.closing import acceptance_link

    intake = stored(example("xinghe"), delivery_start=dt.date(2026, 12, 2))
    expires = int((dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).timestamp())
    claim = LinkClaim(
        intake.deal_id,
        keys.ACCEPTANCE_WAIT,
        "chen.jing@example.com",
        RUN,
        expires,
        Purpose.ACCEPTANCE.value,
    )
    path = "/acceptance/" + acceptance_link(claim).rsplit("/", 1)[1]

    page = client.get(path)
    assert page.status_code == 200
    assert '<label for="report">已签署的验收报告（编号或文件名）</label>' in page.text
    assert '<input id="report" name="report"' in page.text
