"""Signed links: a token names the deal, the gate, the person and the run, and expires.

A token is ``<key id>.<payload>.<signature>``, all three base64url:

- the payload is the claim, as JSON;
- the key id names the signing secret that made it (eight characters of an HMAC of the
  secret, which tells nothing about it), so that after the secret is rotated the links
  made with the previous one are still found and checked with it
  (``DEALFLOW_PREVIOUS_SIGNING_SECRET``);
- the signature is an HMAC-SHA256 of ``<key id>.<payload>`` under a key derived from
  the secret *for the link's purpose* (approval, acceptance, deal page): a token made
  for one purpose is no good for another, whatever its payload says.

A link is checked for its signature before anything in it is believed.

Links mailed by releases before key ids (the "previous format") are ``<payload>.<signature>``,
signed with the secret itself (deal-page links with a key derived for them). They are
still accepted, with the current or the previous secret, so that deals already waiting
on one can go on, until ``DEALFLOW_LEGACY_LINKS_UNTIL`` if it is set; each one expires
by itself anyway (an approval link after 14 days, an acceptance link of those releases
after 365). No link is made in that format any more.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from enum import StrEnum

from models.settings import Settings, get_settings


class Purpose(StrEnum):
    APPROVAL = "approval"
    ACCEPTANCE = "acceptance"
    SIGNING = "signing"
    DEAL_PAGE = "deal-page"
    SURVEY = "survey"  # the customer's satisfaction survey
    PROGRESS = "progress"  # the sales rep's weekly progress report during delivery
    REPURCHASE = "repurchase"  # the sales rep's repurchase conversation once paid


class LinkProblem(StrEnum):
    MALFORMED = "malformed"
    FORGED = "forged"
    EXPIRED = "expired"
    WRONG_PURPOSE = "wrong purpose"  # a genuine link, made for another page


class LinkError(ValueError):
    def __init__(self, problem: LinkProblem, claim: LinkClaim | None = None) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.claim = claim


@dataclass(frozen=True)
class LinkClaim:
    """What a signed link claims: for deal ``deal_id`` and its run, ``approver`` may
    answer step ``gate`` (a gate's name, ``signing``, ``acceptance``, ``survey``,
    ``progress`` or ``repurchase``) until ``expires_at``."""

    deal_id: str
    gate: str
    approver: str
    run_id: str
    expires_at: int  # seconds since the epoch, UTC
    # What the link is for: "approval" (a gate's decision), "acceptance" (delivery),
    # "signing" (the signed contract), "survey" (the customer's satisfaction survey; its
    # ``approver`` is the customer's contact), "progress" and "repurchase" (the sales rep's
    # weekly progress report and repurchase conversation) or "deal-page". Links issued
    # before it existed are approval links.
    purpose: str = Purpose.APPROVAL.value

    @property
    def expires(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.expires_at, dt.UTC)


@dataclass(frozen=True)
class SigningKeys:
    """The secrets links are checked with: the current one (which signs), the previous
    one during a rotation, and until when links of the previous format are accepted."""

    current: bytes
    previous: bytes | None = None
    legacy_until: dt.datetime | None = None

    @property
    def secrets(self) -> list[bytes]:
        return [self.current] + ([self.previous] if self.previous else [])


def link_keys(settings: Settings | None = None) -> SigningKeys:
    settings = settings or get_settings()
    until = settings.legacy_links_until
    return SigningKeys(
        settings.signing_key(),
        settings.previous_signing_key(),
        dt.datetime.combine(until, dt.time(), dt.UTC) if until else None,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(message: str, key: bytes) -> str:
    return _b64(hmac.new(key, message.encode(), hashlib.sha256).digest())


KEY_ID_LENGTH = 8  # a payload of the previous format is always longer


def key_id(secret: bytes) -> str:
    """Names ``secret`` in the tokens it signs, without telling anything about it."""
    return _mac("dealflow link key id", secret)[:KEY_ID_LENGTH]


def purpose_key(secret: bytes, purpose: str) -> bytes:
    """The key that signs links of one purpose, derived from the signing secret."""
    return hmac.new(secret, f"dealflow link key\n{purpose}".encode(), hashlib.sha256).digest()


def _legacy_key(secret: bytes, purpose: str) -> bytes:
    """What the previous format signed with: the secret itself, and for deal pages a key
    derived from it (dealflow/infra/deal_links.py of those releases)."""
    if purpose == Purpose.DEAL_PAGE:
        return hmac.new(secret, b"dealflow deal page", hashlib.sha256).digest()
    return secret


def _keys(keys: SigningKeys | bytes) -> SigningKeys:
    return keys if isinstance(keys, SigningKeys) else SigningKeys(keys)


def _same(given: str, expected: str) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, not a
    # refusal), and a link's path may carry any character.
    return hmac.compare_digest(given.encode(), expected.encode())


def sign(claim: LinkClaim, keys: SigningKeys | bytes) -> str:
    """A token for ``claim``, signed with the current secret for the claim's purpose."""
    secret = _keys(keys).current
    kid = key_id(secret)
    payload = _b64(json.dumps(asdict(claim), separators=(",", ":"), sort_keys=True).encode())
    return f"{kid}.{payload}.{_mac(f'{kid}.{payload}', purpose_key(secret, claim.purpose))}"


def verify(
    token: str,
    keys: SigningKeys | bytes,
    now: dt.datetime,
    purpose: str = Purpose.APPROVAL,
) -> LinkClaim:
    """The claim in ``token``, a link for ``purpose``; LinkError if it is malformed,
    forged, expired or a link for another purpose."""
    keys = _keys(keys)
    parts = token.split(".")
    if len(parts) == 3 and all(parts):
        payload = _check_keyed(parts, keys, purpose)
        legacy = False
    elif len(parts) == 2 and all(parts) and len(parts[0]) != KEY_ID_LENGTH:
        # (A key id and a payload without signature is a link cut short, not this.)
        payload = _check_legacy(parts, keys, purpose)
        legacy = True
    else:
        raise LinkError(LinkProblem.MALFORMED)
    try:
        claim = LinkClaim(**json.loads(_unb64(payload)))
    except (ValueError, TypeError) as exc:
        raise LinkError(LinkProblem.MALFORMED) from exc
    if claim.purpose != purpose:
        raise LinkError(LinkProblem.WRONG_PURPOSE)
    if now.timestamp() >= claim.expires_at:
        raise LinkError(LinkProblem.EXPIRED, claim)
    if legacy and keys.legacy_until is not None and now >= keys.legacy_until:
        raise LinkError(LinkProblem.EXPIRED, claim)
    return claim


def _check_keyed(parts: list[str], keys: SigningKeys, purpose: str) -> str:
    kid, payload, signature = parts
    secrets = [secret for secret in keys.secrets if key_id(secret) == kid]
    signed = f"{kid}.{payload}"
    if any(_same(signature, _mac(signed, purpose_key(s, purpose))) for s in secrets):
        return payload
    others = [p for p in Purpose if p != purpose]
    if any(_same(signature, _mac(signed, purpose_key(s, p))) for s in secrets for p in others):
        raise LinkError(LinkProblem.WRONG_PURPOSE)
    raise LinkError(LinkProblem.FORGED)


def _check_legacy(parts: list[str], keys: SigningKeys, purpose: str) -> str:
    payload, signature = parts
    if any(
        _same(signature, _mac(payload, _legacy_key(s, p))) for s in keys.secrets for p in Purpose
    ):
        # Approval and acceptance links shared the secret: the payload's purpose, now
        # believed, tells them apart (verify compares it).
        if any(_same(signature, _mac(payload, _legacy_key(s, purpose))) for s in keys.secrets):
            return payload
        raise LinkError(LinkProblem.WRONG_PURPOSE)
    raise LinkError(LinkProblem.FORGED)
