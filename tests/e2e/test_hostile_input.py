"""Hostile and broken input: generated tokens, links turned against another gate, deal or
person, the web service fuzzed from its OpenAPI schema, markup in deal data. Each is
refused with a clear page, and nothing changes."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok

from dealflow.infra.db import session_scope
from dealflow.infra.links import LinkClaim, LinkError, sign, verify
from dealflow.infra.records import approvals, get_deal
from harness.mail import decide, link_in, text_of, to
from harness.runs import run_state, wait_for_state
from models.settings import get_settings
from tests.conftest import Inbox
from tests.support import approve_via_email, deal_file, deal_waiting_at_manager, submit

MANAGER, DIRECTOR = "mara.keller@example.com", "dana.whitfield@example.com"
KEY = b"k" * 32
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
REFUSALS = {400: "This link is incomplete", 403: "This link is not valid"}
TOKEN_TEXT = st.text(
    alphabet=st.sampled_from(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=~%"
    ),
    max_size=400,
)

claims = st.builds(
    LinkClaim,
    deal_id=st.text(min_size=1, max_size=40),
    gate=st.text(min_size=1, max_size=20),
    approver=st.emails(),
    run_id=st.uuids().map(str),
    expires_at=st.integers(int(NOW.timestamp()) + 1, 2**40),
)


@given(token=st.text(max_size=300))
def test_any_text_is_refused_as_a_link_error_and_nothing_else(token: str) -> None:
    with pytest.raises(LinkError):
        verify(token, KEY, NOW)


@given(claim=claims)
def test_every_signed_claim_verifies_to_itself(claim: LinkClaim) -> None:
    assert verify(sign(claim, KEY), KEY, NOW) == claim


@given(claim=claims, data=st.data())
def test_a_token_changed_anywhere_is_refused(claim: LinkClaim, data: st.DataObject) -> None:
    token = sign(claim, KEY)
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != token[index]))
    with pytest.raises(LinkError):
        verify(token[:index] + replacement + token[index + 1 :], KEY, NOW)


@given(claim=claims, key=st.binary(min_size=1, max_size=64).filter(lambda k: k != KEY))
def test_a_token_signed_with_another_key_is_refused(claim: LinkClaim, key: bytes) -> None:
    with pytest.raises(LinkError):
        verify(sign(claim, key), KEY, NOW)


# --- against the running web service ------------------------------------------------


def relink(link: str, **changes: Any) -> str:
    token = link.rsplit("/", 1)[1]
    claim = verify(token, get_settings().signing_key(), dt.datetime.now(dt.UTC))
    changed = dataclasses.replace(claim, **changes)
    return f"{link.rsplit('/', 1)[0]}/{sign(changed, get_settings().signing_key())}"


def decisions(deal_id: str) -> list[tuple[str, str | None, str | None]]:
    with session_scope() as session:
        return [(a.gate, a.decision, a.decided_by) for a in approvals(session, deal_id)]


@pytest.fixture(scope="module")
def waiting(stack: Any, inbox: Inbox, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    deal_id, _, link = deal_waiting_at_manager(inbox, tmp_path_factory.mktemp("hostile"))
    return deal_id, link


@pytest.mark.stack
def test_generated_tokens_get_a_clear_page_and_change_nothing(
    stack: Any, waiting: tuple[str, str]
) -> None:
    deal_id, link = waiting
    before = decisions(deal_id)
    base = link.rsplit("/", 1)[0]

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(token=TOKEN_TEXT.filter(lambda t: t not in {"", ".", ".."} and "/" not in t))
    def check(token: str) -> None:
        for response in (
            httpx.get(f"{base}/{token}"),
            httpx.post(f"{base}/{token}", data={"decision": "approve", "comment": "x"}),
        ):
            # Tokens that URL-decode to a path of their own may not reach the page (404).
            assert response.status_code in {400, 403, 404}, response.text
            if response.status_code in REFUSALS:
                assert REFUSALS[response.status_code] in response.text
            assert "Traceback" not in response.text

    check()
    assert decisions(deal_id) == before


@pytest.mark.stack
def test_a_mail_scanner_opening_the_link_changes_nothing(
    stack: Any, waiting: tuple[str, str]
) -> None:
    deal_id, link = waiting
    before = decisions(deal_id)
    for _ in range(3):
        assert httpx.get(link).status_code == 200
        assert httpx.head(link).status_code in {200, 405}
    assert decisions(deal_id) == before
    assert run_state(get_run(deal_id))[:2] == ("PAUSED", "gate-manager")


def get_run(deal_id: str) -> str:
    with session_scope() as session:
        run_id = get_deal(session, deal_id).flow_run_id
    assert run_id is not None
    return run_id


@pytest.mark.stack
def test_a_link_turned_to_another_deal_is_refused(
    stack: Any, inbox: Inbox, waiting: tuple[str, str], tmp_path: Path
) -> None:
    deal_a, link_a = waiting
    deal_b, _, link_b = deal_waiting_at_manager(inbox, tmp_path)
    before = decisions(deal_a), decisions(deal_b)
    for forged in (relink(link_a, deal_id=deal_b), relink(link_b, run_id=get_run(deal_a))):
        response = decide(forged, "approve", "x")
        assert response.status_code == 403
        assert "does not belong to a gate of this deal" in response.text
    assert (decisions(deal_a), decisions(deal_b)) == before


@pytest.mark.stack
def test_after_a_rejection_no_link_decides_anything(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    deal_id, run_id, link = deal_waiting_at_manager(inbox, tmp_path)
    assert decide(link, "reject", "Customer failed the credit check").status_code == 200
    wait_for_state(run_id, "COMPLETED")
    replayed = decide(link, "approve", "changed my mind")
    assert replayed.status_code == 409 and "Already rejected by Mara Keller" in replayed.text
    director = decide(relink(link, gate="director", approver=DIRECTOR), "approve", "x")
    assert director.status_code == 409 and "already rejected" in director.text
    assert decisions(deal_id)[0][:2] == ("manager", "rejected")
    assert all(decision is None for _, decision, _ in decisions(deal_id)[1:])


@pytest.mark.stack
def test_whoever_approved_one_gate_cannot_approve_the_next(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    path, deal_id = deal_file(tmp_path)
    run_id = submit(path)
    manager_link = approve_via_email(inbox, MANAGER, "Approval needed", deal_id, "fine")
    inbox.wait_for(to(DIRECTOR, "Approval needed", deal_id))
    wait_for_state(run_id, "PAUSED", key="gate-director")
    as_manager = relink(manager_link, gate="director")  # Mara's own, genuinely signed
    refused = decide(as_manager, "approve", "me again")
    assert refused.status_code == 403 and "not to you" in refused.text
    assert [d for d in decisions(deal_id) if d[0] == "director"] == [("director", None, None)]


@pytest.mark.stack
def test_markup_in_deal_data_is_text_in_the_email_and_on_the_page(
    stack: Any, inbox: Inbox, tmp_path: Path
) -> None:
    hostile = "<script>alert('deal')</script>"
    path, deal_id = deal_file(tmp_path)
    data = path.read_text().replace('"Acme Logistics GmbH"', f'"{hostile}"')
    path.write_text(data)
    submit(path)
    request = inbox.wait_for(to(MANAGER, "Approval needed", deal_id))
    html = text_of(request, "html")
    assert hostile not in html and "&lt;script&gt;" in html
    page = httpx.get(link_in(request)).text
    assert hostile not in page and "&lt;script&gt;" in page


# --- the whole HTTP API, from its own schema ---------------------------------------


@pytest.mark.stack
def test_the_web_service_fuzzed_from_its_openapi_schema(
    docs_web_service: str, waiting: tuple[str, str]
) -> None:
    """No request the schema allows gets a server error, and none changes a deal; the
    genuine token is mixed in so that fuzzed forms reach the decision code. The schema
    is served only with DEALFLOW_API_DOCS: the fuzzed web service has it, on the
    stack's database."""
    deal_id, link = waiting
    genuine = link.rsplit("/", 1)[1]
    before = decisions(deal_id)
    schema = schemathesis.openapi.from_url(f"{docs_web_service}/openapi.json")
    labels = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"our OpenAPI schema is invalid: {result}"
        operation = result.ok()
        fuzz(operation, docs_web_service, genuine)
        labels.append(operation.label)
    seen = len(labels)
    assert seen >= 3, f"the approval page, the decision and the health check: {labels}"
    assert decisions(deal_id) == before


def fuzz(operation: Any, base_url: str, genuine: str) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(), use_genuine=st.booleans())
    def check(case: Any, use_genuine: bool) -> None:
        if use_genuine and "token" in (case.path_parameters or {}):
            case.path_parameters["token"] = genuine
            form = case.body if isinstance(case.body, dict) else {}
            if form.get("decision") in {"approve", "reject"}:
                return  # a real decision on a genuine link is allowed to decide
        response = case.call(base_url=base_url)
        assert response.status_code < 500, (operation.label, response.text[:500])
        assert "Traceback" not in response.text

    check()
