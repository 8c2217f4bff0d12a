"""The customer's satisfaction survey page, opened from the link in their email: opening
it changes nothing; posting it records a score of 0-10 once; what it cannot take (a bad
score, another kind of link, an expired one) is refused in the customer's language."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from dealflow.infra.db import session_scope
from dealflow.infra.links import LinkClaim, Purpose
from dealflow.infra.records import timeline
from models import keys
from tasks.closing import acceptance_link
from tasks.satisfaction import survey_link
from tests.tasks.test_email_languages import RUN, example, stored

pytestmark = pytest.mark.usefixtures("database_url")
JONAS = "jonas.weber@acme-logistics.example"
WANG = "wang.qiang@xinghe-manufacturing.example"


@pytest.fixture
def client() -> TestClient:
    from web.app import app

    return TestClient(app)


def path_of(deal_id: str, contact: str = JONAS, *, days: float = 30, purpose: str = "") -> str:
    expires = int((dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).timestamp())
    claim = LinkClaim(deal_id, keys.SURVEY_STEP, contact, RUN, expires, purpose or "survey")
    link = acceptance_link(claim) if purpose == Purpose.ACCEPTANCE else survey_link(claim)
    return "/survey/" + link.rsplit("/", 1)[1]


def entries(deal_id: str) -> list[str]:
    with session_scope() as session:
        return [t.key for t in timeline(session, deal_id)]


def test_opening_the_survey_changes_nothing_and_an_answer_is_recorded_once(
    client: TestClient,
) -> None:
    deal_id = stored(example("acme")).deal_id
    before = entries(deal_id)
    for _ in range(2):  # a mail scanner, then the customer
        page = client.get(path_of(deal_id))
        assert page.status_code == 200
        assert "How likely are you to recommend us to a colleague?" in page.text
        assert '<textarea id="comment" name="comment"' in page.text
        assert "Answered as Jonas Weber" in page.text
    assert entries(deal_id) == before

    page = client.post(path_of(deal_id), data={"score": "9", "comment": "Smooth rollout"})
    assert page.status_code == 200
    assert "Thank you: your answer is recorded." in page.text
    assert keys.SURVEY_ANSWERED in entries(deal_id)
    assert keys.COMPLAINT_OPENED not in entries(deal_id)

    page = client.post(path_of(deal_id), data={"score": "2", "comment": "changed my mind"})
    assert page.status_code == 409
    assert f"This survey was already answered by {JONAS} on " in page.text
    assert entries(deal_id).count(keys.SURVEY_ANSWERED) == 1
    assert keys.COMPLAINT_OPENED not in entries(deal_id)
    page = client.get(path_of(deal_id))
    assert 'data-verdict="already-decided"' in page.text and "<form" not in page.text


def test_a_low_score_opens_a_complaint_and_says_when_it_is_answered(client: TestClient) -> None:
    deal_id = stored(example("acme")).deal_id
    page = client.post(path_of(deal_id), data={"score": "4", "comment": "Late"})
    assert page.status_code == 200
    assert "Our customer success team will answer you by" in page.text
    recorded = entries(deal_id)
    assert recorded.index(keys.SURVEY_ANSWERED) < recorded.index(keys.COMPLAINT_OPENED)


@pytest.mark.parametrize("score", ["11", "-1", "7.5", "", "ten", "9" * 500])
def test_a_score_that_is_not_0_to_10_records_nothing(client: TestClient, score: str) -> None:
    deal_id = stored(example("acme")).deal_id
    before = entries(deal_id)
    page = client.post(path_of(deal_id), data={"score": score})
    assert page.status_code == 400
    assert "Choose a score from 0 to 10" in page.text
    assert entries(deal_id) == before


def test_a_link_of_another_kind_or_expired_records_nothing(client: TestClient) -> None:
    deal_id = stored(example("acme")).deal_id
    before = entries(deal_id)
    wrong = path_of(deal_id, purpose=Purpose.ACCEPTANCE)
    for page in (client.get(wrong), client.post(wrong, data={"score": "9"})):
        assert page.status_code == 403
        assert "It is not a survey link." in page.text
    expired = path_of(deal_id, days=-1)
    for page in (client.get(expired), client.post(expired, data={"score": "9"})):
        assert page.status_code == 410
        assert "It is expired." in page.text
    page = client.get("/survey/not-a-token")
    assert page.status_code == 403
    assert entries(deal_id) == before


def test_a_chinese_customer_reads_the_survey_in_chinese(client: TestClient) -> None:
    deal_id = stored(example("xinghe")).deal_id
    page = client.get(path_of(deal_id, WANG))
    assert page.status_code == 200
    assert '<html lang="zh-Hans">' in page.text
    assert "How likely" not in page.text
    assert "您向同事推荐我们的可能性有多大" in page.text
    page = client.post(path_of(deal_id, WANG), data={"score": "abc"})
    assert page.status_code == 400 and "请选择 0 到 10 的分数" in page.text
    page = client.get(path_of(deal_id, WANG, days=-1))
    assert page.status_code == 410 and '<html lang="zh-Hans">' in page.text
