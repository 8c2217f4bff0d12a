"""Approval links: signed, expiring, and believed only after the signature checks out."""

from __future__ import annotations

import datetime as dt

import pytest

from dealflow.infra.links import ApprovalClaim, LinkError, LinkProblem, sign, verify

KEY = b"k" * 32
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
CLAIM = ApprovalClaim(
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
    payload, signature = token.split(".")
    for index in range(0, len(payload), 7):
        flipped = "A" if payload[index] != "A" else "B"
        tampered = payload[:index] + flipped + payload[index + 1 :]
        assert problem(f"{tampered}.{signature}") in {LinkProblem.FORGED, LinkProblem.MALFORMED}


def test_a_claim_for_another_gate_cannot_reuse_a_signature() -> None:
    other = sign(ApprovalClaim(**{**CLAIM.__dict__, "gate": "legal"}), KEY)
    assert problem(f"{other.split('.')[0]}.{sign(CLAIM, KEY).split('.')[1]}") is LinkProblem.FORGED


def test_an_expired_link_says_when_it_expired() -> None:
    with pytest.raises(LinkError) as caught:
        verify(sign(CLAIM, KEY), KEY, NOW + dt.timedelta(days=2))
    assert caught.value.problem is LinkProblem.EXPIRED
    assert caught.value.claim is not None
    assert caught.value.claim.expires == NOW + dt.timedelta(days=1)


@pytest.mark.parametrize("token", ["", "abc", "abc.", ".abc", "a.b.c"])
def test_malformed_tokens(token: str) -> None:
    assert problem(token) in {LinkProblem.MALFORMED, LinkProblem.FORGED}
