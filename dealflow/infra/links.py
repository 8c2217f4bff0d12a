"""Signed approval links: a token names the deal, the gate, the approver and the run.

The token is ``<payload>.<signature>``, both base64url; the signature is HMAC-SHA256 of
the payload. A link is checked for its signature before anything in it is believed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from enum import StrEnum


class LinkProblem(StrEnum):
    MALFORMED = "malformed"
    FORGED = "forged"
    EXPIRED = "expired"


class LinkError(ValueError):
    def __init__(self, problem: LinkProblem, claim: ApprovalClaim | None = None) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.claim = claim


@dataclass(frozen=True)
class ApprovalClaim:
    deal_id: str
    gate: str
    approver: str
    run_id: str
    expires_at: int  # seconds since the epoch, UTC
    # What the link is for: "approval" (a gate's decision) or "acceptance" (delivery).
    # Links issued before it existed are approval links.
    purpose: str = "approval"

    @property
    def expires(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.expires_at, dt.UTC)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(payload: str, key: bytes) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def sign(claim: ApprovalClaim, key: bytes) -> str:
    payload = _b64(json.dumps(asdict(claim), separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_signature(payload, key)}"


def verify(token: str, key: bytes, now: dt.datetime) -> ApprovalClaim:
    """The claim in ``token``; LinkError if it is malformed, forged or expired."""
    payload, dot, signature = token.partition(".")
    if not dot or not payload or not signature:
        raise LinkError(LinkProblem.MALFORMED)
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, not a
    # refusal), and a link's path may carry any character.
    if not hmac.compare_digest(signature.encode(), _signature(payload, key).encode()):
        raise LinkError(LinkProblem.FORGED)
    try:
        claim = ApprovalClaim(**json.loads(_unb64(payload)))
    except (ValueError, TypeError) as exc:
        raise LinkError(LinkProblem.MALFORMED) from exc
    if now.timestamp() >= claim.expires_at:
        raise LinkError(LinkProblem.EXPIRED, claim)
    return claim
