"""The sales rep's duty pages (#17), opened from the links in the sla-sweep's emails:
the weekly progress report while delivery runs and the repurchase conversation once the
deal is paid. Opening a page changes nothing; posting it records the duty once, as the
CLI does; a second post says it is already recorded; an empty note, another kind of link
or an expired one records nothing. Real HTTP to the web app, the real database and the
real SMTP inbox."""

from __future__ import annotations

import datetime as dt
import html
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from dealflow.infra.db import session_scope
from dealflow.infra.links import Purpose
from dealflow.infra.records import get_deal, timeline
from harness.mail import PROGRESS_LINK, REPURCHASE_LINK, link_in, text_of, to
from models import keys
from tasks.deadlines import follow_up_delivery_progress, follow_up_repurchases
from tasks.duty_links import duty_claim, duty_url
from tests.conftest import Inbox
from tests.tasks.test_repurchase import paid
from tests.tasks.test_signing import note, stored

pytestmark = pytest.mark.usefixtures("database_url")
REP = "sam.rivera@example.com"
CUSTOMER = "jonas.weber@acme-logistics.example"  # acme's first contact


@pytest.fixture
def client() -> TestClient:
    from web.app import app

    return TestClient(app)


def entries(deal_id: str, prefix: str) -> list[str]:
    with session_scope() as session:
        return [t.key for t in timeline(session, deal_id) if t.key.startswith(prefix)]


def path(link: str) -> str:
    return urlsplit(link).path


def kicked_off(example: str = "acme.json", days_ago: float = 8) -> str:
    """A deal whose delivery was kicked off ``days_ago``: its first week has ended."""
    deal_id = stored(example)
    now = dt.datetime.now(dt.UTC)
    note(deal_id, keys.KICKOFF, "delivery_kickoff", now - dt.timedelta(days=days_ago))
    return deal_id


def link_of(purpose: Purpose, deal_id: str, days: float = 0) -> str:
    """A duty link made ``days`` from now (-100: expired)."""
    with session_scope() as session:
        deal = get_deal(session, deal_id)
        since = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
        return path(duty_url(duty_claim(purpose, deal, since)))


def test_the_progress_reminder_carries_a_link_that_records_the_report_once(
    client: TestClient, inbox: Inbox
) -> None:
    deal_id = kicked_off()
    follow_up_delivery_progress.fn(dt.datetime.now(dt.UTC))
    [reminder] = inbox.matching(to(REP, "Progress report for week 1 due", deal_id))
    link = path(link_in(reminder, PROGRESS_LINK))
    assert "The link works until" in text_of(reminder)

    for _ in range(2):  # a mail scanner, then the rep
        page = client.get(link)
        assert page.status_code == 200, page.text
        assert '<textarea id="note" name="note"' in page.text
        assert 'name="to_customer" type="checkbox"' in page.text
        assert "Progress in delivery week 2" in page.text
        assert f"Recorded as {REP}." in page.text
    assert entries(deal_id, "progress/week-") == ["progress/week-1/reminder"]

    page = client.post(link, data={"note": "Pilot site live", "to_customer": "true"})
    assert page.status_code == 200, page.text
    assert f"the progress report of {deal_id} for delivery week 2 is recorded." in page.text
    assert f"It is emailed to Jonas Weber <{CUSTOMER}>." in html.unescape(page.text)
    assert entries(deal_id, "progress/week-2") == ["progress/week-2"]
    [sent] = inbox.matching(to(CUSTOMER, "Progress report, week 2", deal_id))
    assert "Pilot site live" in text_of(sent)

    again = client.post(link, data={"note": "Pilot site live"})
    assert again.status_code == 409
    assert f"the progress report for week 2 of {deal_id} was already recorded by {REP}" in (
        again.text
    )
    assert entries(deal_id, "progress/week-2") == ["progress/week-2"]
    shown = client.get(link)
    assert 'data-verdict="already-decided"' in shown.text and "<form" not in shown.text


def test_the_kickoff_email_carries_the_rep_a_working_progress_link(
    client: TestClient, inbox: Inbox
) -> None:
    from tasks.handoff import kick_off_delivery

    deal_id = stored()
    kick_off_delivery.fn(deal_id)
    [kickoff] = [
        m
        for m in inbox.messages
        if "Delivery kickoff: " in str(m["Subject"]) and deal_id in str(m["Subject"])
    ]
    assert REP in str(kickoff["Cc"])
    assert "Sam Rivera, record each delivery week's progress report here" in text_of(kickoff)
    page = client.get(path(link_in(kickoff, PROGRESS_LINK)))
    assert page.status_code == 200 and "Progress in delivery week 1" in page.text


def test_an_empty_note_or_a_delivery_not_running_records_nothing(client: TestClient) -> None:
    deal_id = kicked_off()
    link = link_of(Purpose.PROGRESS, deal_id)
    page = client.post(link, data={"note": "   "})
    assert page.status_code == 400 and "Write the progress note" in page.text
    assert entries(deal_id, "progress/week-") == []

    waiting = stored()  # not kicked off: nothing to report on yet
    page = client.get(link_of(Purpose.PROGRESS, waiting))
    assert page.status_code == 409
    assert f"the delivery of {waiting} is not kicked off yet" in page.text
    assert client.post(link_of(Purpose.PROGRESS, waiting), data={"note": "x"}).status_code == 409
    assert entries(waiting, "progress/week-") == []


def test_a_link_of_another_kind_or_expired_records_nothing(client: TestClient) -> None:
    deal_id = kicked_off()
    wrong = link_of(Purpose.REPURCHASE, deal_id).replace("/repurchase/", "/progress/")
    for page in (client.get(wrong), client.post(wrong, data={"note": "x"})):
        assert page.status_code == 403
        assert "It is not a progress report link." in page.text
    expired = link_of(Purpose.PROGRESS, deal_id, days=-100)
    for page in (client.get(expired), client.post(expired, data={"note": "x"})):
        assert page.status_code == 410
        assert "It is expired." in page.text
        assert "dealflow deal progress" in page.text
    assert client.get("/repurchase/not-a-token").status_code == 403
    assert entries(deal_id, "progress/week-") == []


def test_the_repurchase_request_carries_a_link_that_records_the_conversation_once(
    client: TestClient, inbox: Inbox
) -> None:
    deal_id = paid(dt.datetime.now(dt.UTC) - dt.timedelta(days=31))
    follow_up_repurchases.fn(dt.datetime.now(dt.UTC))
    [request] = inbox.matching(to(REP, "Repurchase conversation", deal_id))
    link = path(link_in(request, REPURCHASE_LINK))

    for _ in range(2):
        page = client.get(link)
        assert page.status_code == 200, page.text
        assert '<textarea id="note" name="note"' in page.text
    assert keys.REPURCHASE_RECORDED not in entries(deal_id, "repurchase/")

    empty = client.post(link, data={"note": ""})
    assert empty.status_code == 400 and "Write how the conversation went" in empty.text
    assert keys.REPURCHASE_RECORDED not in entries(deal_id, "repurchase/")

    page = client.post(link, data={"note": "Wants a second site next year"})
    assert page.status_code == 200, page.text
    assert f"the repurchase conversation of {deal_id} is recorded." in page.text
    again = client.post(link, data={"note": "Changed my mind"})
    assert again.status_code == 409
    assert f"was already recorded by {REP} at" in again.text
    assert entries(deal_id, "repurchase/").count(keys.REPURCHASE_RECORDED) == 1
    shown = client.get(link)
    assert 'data-verdict="already-decided"' in shown.text and "<form" not in shown.text


def test_a_chinese_speaking_rep_reads_the_pages_in_chinese(client: TestClient) -> None:
    deal_id = kicked_off("xinghe.json")
    page = client.get(link_of(Purpose.PROGRESS, deal_id))
    assert page.status_code == 200
    assert '<html lang="zh-Hans">' in page.text and "Progress in delivery" not in page.text
    page = client.post(link_of(Purpose.PROGRESS, deal_id), data={"note": ""})
    assert page.status_code == 400 and "Write the progress note" not in page.text
    paid_id = paid(example="xinghe.json")
    page = client.get(link_of(Purpose.REPURCHASE, paid_id))
    assert page.status_code == 200
    assert '<html lang="zh-Hans">' in page.text and "How the conversation went" not in page.text
    # An expired link is not believed: the page is in the browser's language.
    expired = link_of(Purpose.REPURCHASE, paid_id, days=-100)
    page = client.get(expired, headers={"accept-language": "zh-CN,zh;q=0.9"})
    assert page.status_code == 410 and "这不是" not in page.text
    assert "请用 `dealflow deal repurchase` 登记复购沟通。" in page.text
