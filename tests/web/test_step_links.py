"""The pages that answer a deal's waiting step from a link (the signed contract, the
customer's acceptance) refuse alike what they cannot take: another kind of link, an
expired one, a date that is none, a link to another run, a step recorded before. Each
says what is wrong in its reader's language; nothing is recorded."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from dealflow.infra.db import session_scope
from dealflow.infra.links import LinkClaim, Purpose
from dealflow.infra.records import add_transition, get_deal, timeline
from models import keys
from tasks.closing import acceptance_link
from tasks.signing import signing_link
from tests.tasks.test_email_languages import RUN, example, stored

pytestmark = pytest.mark.usefixtures("database_url")
REP, MANAGER = "sam.rivera@example.com", "priya.nair@example.com"
DATE_FIELD = {"signing": "signed_on", "acceptance": "accepted_on"}
FILLED_IN = {"signing": {"signed_by": "Li Wei", "document": "contract.pdf"}, "acceptance": {}}
STEPS = {
    "signing": (keys.SIGNING_WAIT, Purpose.SIGNING, signing_link, REP),
    "acceptance": (keys.ACCEPTANCE_WAIT, Purpose.ACCEPTANCE, acceptance_link, MANAGER),
}


@pytest.fixture
def client() -> TestClient:
    from web.app import app

    return TestClient(app)


def path_of(kind: str, deal_id: str, *, run: str = RUN, days: float = 1, purpose: str = "") -> str:
    step, link_purpose, link, person = STEPS[kind]
    expires = int((dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).timestamp())
    claim = LinkClaim(deal_id, step, person, run, expires, purpose or link_purpose.value)
    return f"/{kind}/" + link(claim).rsplit("/", 1)[1]


def entries(deal_id: str) -> list[str]:
    with session_scope() as session:
        return [t.key for t in timeline(session, deal_id)]


@pytest.mark.parametrize("kind", list(STEPS))
def test_a_link_of_another_kind_or_to_another_run_records_nothing(
    client: TestClient, kind: str
) -> None:
    deal_id = stored(example("acme")).deal_id
    before = entries(deal_id)
    other = "acceptance" if kind == "signing" else "signing"
    wrong_kind = path_of(kind, deal_id, purpose=STEPS[other][1].value)
    page = client.get(wrong_kind)
    assert page.status_code == 403
    assert f"It is not a{'n' if kind == 'acceptance' else ''} {kind} link." in page.text

    page = client.post(path_of(kind, deal_id), data={DATE_FIELD[kind]: "2 March"})
    assert page.status_code == 400
    assert "Give the date as YYYY-MM-DD (got &#39;2 March&#39;)." in page.text

    page = client.post(path_of(kind, deal_id, run="an-earlier-run"), data=FILLED_IN[kind])
    assert page.status_code == 409
    assert f"This link does not belong to the current run of {deal_id}." in page.text
    assert entries(deal_id) == before


def test_an_expired_acceptance_link_says_how_to_get_a_fresh_one_in_chinese(
    client: TestClient,
) -> None:
    deal_id = stored(example("xinghe")).deal_id
    for kind in STEPS:
        page = client.get(path_of(kind, deal_id, days=-1))
        assert page.status_code == 410
        renew = f"renew-acceptance-link {deal_id}" in page.text
        assert renew == (kind == "acceptance"), "only acceptance links can be renewed"


def test_a_step_recorded_before_says_by_whom(client: TestClient) -> None:
    deal_id = stored(example("acme")).deal_id
    with session_scope() as session:
        deal = get_deal(session, deal_id, for_update=True)
        add_transition(
            session, deal, key=keys.SIGNED, stage="signed", event="signed", actor="sam@example.com"
        )
    page = client.post(
        path_of("signing", deal_id),
        data={"signed_by": "Li Wei", "document": "contract.pdf"},
    )
    assert page.status_code == 409
    assert "Signed contract not recorded" in page.text
    assert f"The signed contract of {deal_id} was already recorded by sam@example.com" in (
        page.text
    )
    assert entries(deal_id).count(keys.SIGNED) == 1
