"""Signed links: expiring, believed only after the signature checks out, one key per
purpose, named by a key id so that a rotated secret still opens its links."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
from dataclasses import asdict

import pytest

from dealflow.infra.links import (
    LinkClaim,
    LinkError,
    LinkProblem,
    Purpose,
    SigningKeys,
    key_id,
    link_keys,
    sign,
    verify,
)
from models.settings import Settings

KEY = b"k" * 32
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
CLAIM = LinkClaim(
    deal_id="ACME-1",
    gate="director",
    approver="dana@example.com",
    run_id="0b3c",
    expires_at=int((NOW + dt.timedelta(days=1)).timestamp()),
)


def problem(token: str, now: dt.datetime = NOW, key: bytes = KEY) -> LinkProblem:
    with pytest.raises(LinkError) as caught:
        verify(token, key, now)
    return caught.value.problem


def test_a_signed_link_verifies_to_its_claim() -> None:
    assert verify(sign(CLAIM, KEY), KEY, NOW) == CLAIM


def test_a_link_signed_with_another_key_is_forged() -> None:
    assert problem(sign(CLAIM, b"other" * 8)) is LinkProblem.FORGED


def test_changing_any_character_of_the_payload_is_forged() -> None:
    token = sign(CLAIM, KEY)
    kid, payload, signature = token.split(".")
    for index in range(0, len(payload), 7):
        flipped = "A" if payload[index] != "A" else "B"
        tampered = payload[:index] + flipped + payload[index + 1 :]
        assert problem(f"{kid}.{tampered}.{signature}") in {
            LinkProblem.FORGED,
            LinkProblem.MALFORMED,
        }


def test_a_claim_for_another_gate_cannot_reuse_a_signature() -> None:
    kid, payload, _ = sign(LinkClaim(**{**CLAIM.__dict__, "gate": "legal"}), KEY).split(".")
    signature = sign(CLAIM, KEY).split(".")[2]
    assert problem(f"{kid}.{payload}.{signature}") is LinkProblem.FORGED


def test_an_expired_link_says_when_it_expired() -> None:
    with pytest.raises(LinkError) as caught:
        verify(sign(CLAIM, KEY), KEY, NOW + dt.timedelta(days=2))
    assert caught.value.problem is LinkProblem.EXPIRED
    assert caught.value.claim is not None
    assert caught.value.claim.expires == NOW + dt.timedelta(days=1)


@pytest.mark.parametrize("token", ["", "abc", "abc.", ".abc", "a.b.c"])
def test_malformed_tokens(token: str) -> None:
    assert problem(token) in {LinkProblem.MALFORMED, LinkProblem.FORGED}


def test_a_token_cut_short_is_malformed_not_forged() -> None:
    kid, payload, _ = sign(CLAIM, KEY).split(".")
    assert problem(f"{kid}.{payload}") is LinkProblem.MALFORMED


# --- keys: one per purpose, a key id, rotation, the previous format ------------------

NEW = b"n" * 32


def legacy_token(claim: dict[str, object], key: bytes) -> str:
    """A link as releases before key ids made it, written out without Dealflow's code:
    ``<payload>.<signature>``, the HMAC-SHA256 of the payload under the secret itself."""
    payload = b64(json.dumps(claim, separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_token_names_its_key_and_is_signed_with_a_key_of_its_purpose() -> None:
    token = sign(CLAIM, KEY)
    kid, payload, signature = token.split(".")
    assert kid == key_id(KEY) and kid != key_id(NEW) and len(kid) == 8
    assert KEY.decode() not in token
    # Not with the secret itself: the key is derived for approvals.
    raw = b64(hmac.new(KEY, f"{kid}.{payload}".encode(), hashlib.sha256).digest())
    assert raw != signature
    assert problem(f"{kid}.{payload}.{raw}") is LinkProblem.FORGED


def test_a_link_of_one_purpose_opens_no_other() -> None:
    acceptance = dataclasses.replace(CLAIM, gate="acceptance", purpose="acceptance")
    token = sign(acceptance, KEY)
    assert verify(token, KEY, NOW, Purpose.ACCEPTANCE) == acceptance
    for other in (Purpose.APPROVAL, Purpose.DEAL_PAGE):
        with pytest.raises(LinkError) as caught:
            verify(token, KEY, NOW, other)
        assert caught.value.problem is LinkProblem.WRONG_PURPOSE
    # Its payload rewritten to say "approval", with its own signature: forged.
    kid, _, signature = token.split(".")
    _, payload, _ = sign(CLAIM, KEY).split(".")
    assert problem(f"{kid}.{payload}.{signature}") is LinkProblem.FORGED


def test_after_a_rotation_the_previous_secret_still_opens_its_links() -> None:
    token = sign(CLAIM, KEY)
    rotated = SigningKeys(NEW, previous=KEY)
    assert verify(token, rotated, NOW) == CLAIM
    assert problem(token, key=NEW) is LinkProblem.FORGED  # without the previous secret
    fresh = sign(CLAIM, rotated)
    assert fresh.split(".")[0] == key_id(NEW), "new links are signed with the new secret"
    assert verify(fresh, rotated, NOW) == CLAIM
    assert problem(fresh) is LinkProblem.FORGED, "a process still on the old secret"


def test_links_of_the_previous_format_still_work_for_their_purpose() -> None:
    claim = asdict(CLAIM)
    assert verify(legacy_token(claim, KEY), KEY, NOW) == CLAIM
    # Approval links from before the purpose field existed are approval links.
    without_purpose = {k: v for k, v in claim.items() if k != "purpose"}
    assert verify(legacy_token(without_purpose, KEY), KEY, NOW) == CLAIM
    acceptance = {**claim, "gate": "acceptance", "purpose": "acceptance"}
    assert verify(legacy_token(acceptance, KEY), KEY, NOW, Purpose.ACCEPTANCE).gate == "acceptance"
    with pytest.raises(LinkError) as caught:
        verify(legacy_token(acceptance, KEY), KEY, NOW, Purpose.APPROVAL)
    assert caught.value.problem is LinkProblem.WRONG_PURPOSE
    page_key = hmac.new(KEY, b"dealflow deal page", hashlib.sha256).digest()
    page = {**claim, "gate": "", "approver": "", "run_id": "", "purpose": "deal-page"}
    assert verify(legacy_token(page, page_key), KEY, NOW, Purpose.DEAL_PAGE).deal_id == "ACME-1"
    # Signed with the secret before a rotation.
    assert verify(legacy_token(claim, KEY), SigningKeys(NEW, previous=KEY), NOW) == CLAIM
    assert problem(legacy_token(claim, KEY), key=NEW) is LinkProblem.FORGED
    assert problem(legacy_token(claim, NEW)) is LinkProblem.FORGED


def test_links_of_the_previous_format_are_refused_from_the_day_set() -> None:
    token = legacy_token(asdict(CLAIM), KEY)
    until = SigningKeys(KEY, legacy_until=NOW + dt.timedelta(hours=1))
    assert verify(token, until, NOW) == CLAIM
    with pytest.raises(LinkError) as caught:
        verify(token, until, NOW + dt.timedelta(hours=1))
    assert caught.value.problem is LinkProblem.EXPIRED
    assert verify(sign(CLAIM, KEY), until, NOW + dt.timedelta(hours=1)) == CLAIM


def test_the_settings_give_the_keys_and_acceptance_links_a_delivery_long_life(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEALFLOW_SIGNING_SECRET", NEW.decode())
    monkeypatch.setenv("DEALFLOW_PREVIOUS_SIGNING_SECRET", KEY.decode())
    monkeypatch.setenv("DEALFLOW_LEGACY_LINKS_UNTIL", "2027-03-01")
    settings = Settings()
    assert link_keys(settings) == SigningKeys(NEW, KEY, dt.datetime(2027, 3, 1, tzinfo=dt.UTC))
    monkeypatch.delenv("DEALFLOW_ACCEPTANCE_LINK_TTL_DAYS", raising=False)
    assert settings.acceptance_link_ttl_days == 120
    monkeypatch.setenv("DEALFLOW_PREVIOUS_SIGNING_SECRET", "short")
    with pytest.raises(ValueError, match="too short"):
        Settings()
