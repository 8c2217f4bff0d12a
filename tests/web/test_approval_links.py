"""Every bad approval link gets a clear page and changes nothing."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from dealflow.infra.db import session_scope
from dealflow.infra.links import LinkClaim, key_id, sign, verify
from dealflow.infra.records import approvals
from harness.mail import decide
from models.settings import get_settings
from tests.conftest import Inbox
from tests.support import deal_file, deal_waiting_at_manager, dealflow

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def waiting_deal(
    stack: Any, inbox: Inbox, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    """A deal waiting at its manager gate, and the manager's genuine link."""
    deal_id, _, link = deal_waiting_at_manager(inbox, tmp_path_factory.mktemp("links"))
    return deal_id, link


def genuine_claim(link: str) -> LinkClaim:
    return verify(link.rsplit("/", 1)[1], get_settings().signing_key(), dt.datetime.now(dt.UTC))


def relink(link: str, **changes: Any) -> str:
    claim = dataclasses.replace(genuine_claim(link), **changes)
    return f"{link.rsplit('/', 1)[0]}/{sign(claim, get_settings().signing_key())}"


def nothing_decided(deal_id: str) -> bool:
    with session_scope() as session:
        return all(a.decision is None for a in approvals(session, deal_id))


@pytest.mark.parametrize(
    ("mangle", "status", "words"),
    [
        (
            lambda link: link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB"),
            403,
            "This link is not valid",
        ),
        (lambda link: link.replace("/approvals/", "/approvals/x"), 403, "This link is not valid"),
        (lambda link: link.rsplit(".", 1)[0], 400, "This link is incomplete"),
        (
            lambda link: relink(link, expires_at=int(dt.datetime.now(dt.UTC).timestamp()) - 60),
            410,
            "This link has expired",
        ),
    ],
    ids=["forged-signature", "tampered-payload", "truncated", "expired"],
)
def test_broken_links_get_a_clear_page_on_get_and_post(
    waiting_deal: tuple[str, str], mangle: Any, status: int, words: str
) -> None:
    deal_id, link = waiting_deal
    bad = mangle(link)
    for response in (httpx.get(bad), decide(bad, "approve")):
        assert response.status_code == status
        assert words in response.text and "Traceback" not in response.text
    assert nothing_decided(deal_id)


def test_a_link_for_a_gate_the_deal_is_not_waiting_at_is_refused(
    waiting_deal: tuple[str, str],
) -> None:
    deal_id, link = waiting_deal
    director_link = relink(link, gate="director", approver="dana.whitfield@example.com")
    response = decide(director_link, "approve")
    assert response.status_code == 409
    assert "not waiting for this decision" in response.text
    assert nothing_decided(deal_id)


def test_a_link_for_a_gate_the_deal_does_not_have_is_refused(
    waiting_deal: tuple[str, str],
) -> None:
    deal_id, link = waiting_deal
    unknown = relink(link, gate="cfo")
    shown = httpx.get(unknown)
    assert shown.status_code == 403 and "names no gate of this deal" in shown.text
    posted = decide(unknown, "approve")
    assert posted.status_code == 403 and "does not belong to a gate" in posted.text
    assert nothing_decided(deal_id)


def test_only_the_assignee_may_decide(waiting_deal: tuple[str, str]) -> None:
    deal_id, link = waiting_deal
    response = decide(relink(link, approver="tom.alvarez@example.com"), "approve")
    assert response.status_code == 403 and "assigned to Mara Keller, not to you" in response.text
    assert nothing_decided(deal_id)


def test_a_link_of_another_run_or_deal_is_refused(waiting_deal: tuple[str, str]) -> None:
    deal_id, link = waiting_deal
    other_run = decide(relink(link, run_id="00000000-0000-0000-0000-000000000000"), "approve")
    assert (
        other_run.status_code == 403 and "does not belong to a gate of this deal" in other_run.text
    )
    no_deal = httpx.get(relink(link, deal_id="NOPE-1"))
    assert no_deal.status_code == 404 and "Deal not found" in no_deal.text
    assert nothing_decided(deal_id)


def test_an_unknown_decision_value_is_refused(waiting_deal: tuple[str, str]) -> None:
    deal_id, link = waiting_deal
    response = decide(link, "maybe")
    assert response.status_code == 400 and "Use the Approve or Reject button" in response.text
    assert nothing_decided(deal_id)


def test_the_submitter_approves_nothing(
    waiting_deal: tuple[str, str], stack: Any, tmp_path: Path
) -> None:
    deal_id, link = waiting_deal
    as_rep = decide(relink(link, approver="sam.rivera@example.com"), "approve")
    assert as_rep.status_code == 403
    assert nothing_decided(deal_id)

    # A manager submitting a deal of their own team has no other manager to approve it.
    path, _ = deal_file(
        tmp_path, sales_rep={"name": "Mara Keller", "email": "mara.keller@example.com"}
    )
    refused = dealflow("deal", "submit", str(path), check=False)
    assert refused.returncode == 1
    assert "nobody in the matrix can act as sales_manager for team 'emea'" in refused.stderr
    assert "other than mara.keller@example.com" in refused.stderr


def legacy_link(link: str) -> str:
    """The same link in the format of releases before key ids, as they made it:
    ``<payload>.<signature>``, HMAC-SHA256 of the payload under the secret itself."""
    payload = base64.urlsafe_b64encode(
        json.dumps(
            dataclasses.asdict(genuine_claim(link)), separators=(",", ":"), sort_keys=True
        ).encode()
    ).rstrip(b"=")
    mac = hmac.new(get_settings().signing_key(), payload, hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    return f"{link.rsplit('/', 1)[0]}/{payload.decode()}.{signature}"


def test_a_mailed_link_names_the_key_that_signed_it(waiting_deal: tuple[str, str]) -> None:
    _, link = waiting_deal
    kid, _payload, _signature = link.rsplit("/", 1)[1].split(".")
    assert kid == key_id(get_settings().signing_key())


def test_a_link_mailed_in_the_previous_format_still_opens(waiting_deal: tuple[str, str]) -> None:
    deal_id, link = waiting_deal
    old = legacy_link(link)
    shown = httpx.get(old)
    assert shown.status_code == 200 and "Approve" in shown.text
    forged = old[:-3] + ("AAA" if not old.endswith("AAA") else "BBB")
    assert httpx.get(forged).status_code == 403
    assert nothing_decided(deal_id)


def test_links_signed_before_a_rotation_open_while_the_previous_secret_is_set(
    waiting_deal: tuple[str, str], web_service: Any
) -> None:
    deal_id, link = waiting_deal
    current = get_settings().signing_key().decode()
    rotated = web_service(
        DEALFLOW_SIGNING_SECRET=secrets.token_urlsafe(32), DEALFLOW_PREVIOUS_SIGNING_SECRET=current
    )
    for mailed in (link, legacy_link(link)):
        token = mailed.rsplit("/", 1)[1]
        shown = httpx.get(f"{rotated}/approvals/{token}")
        assert shown.status_code == 200, shown.text
    assert nothing_decided(deal_id)
