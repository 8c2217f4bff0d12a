"""Who is sending a deal over HTTP: a named API key, or a webhook signed with a shared secret.

A signed webhook carries two headers:

    X-Dealflow-Timestamp: <unix seconds when it was sent>
    X-Dealflow-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + raw body>

The timestamp is part of what is signed, so a captured request cannot be replayed
outside the tolerance window; inside it a replay only returns the same deal again
(intake is idempotent on the deal id).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from pydantic import SecretStr

API_KEY_HEADER = "X-API-Key"
SIGNATURE_HEADER = "X-Dealflow-Signature"
TIMESTAMP_HEADER = "X-Dealflow-Timestamp"
SIGNATURE_SCHEME = "sha256="


class AuthProblem(StrEnum):
    NOT_CONFIGURED = "not_configured"
    MISSING = "missing"
    INVALID = "invalid"


class IntakeAuthError(Exception):
    def __init__(self, problem: AuthProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


@dataclass(frozen=True)
class IntakeCredentials:
    """What a request presented; None for a header it did not send."""

    api_key: str | None
    signature: str | None
    timestamp: str | None
    body: bytes


def signature_for(secret: bytes, timestamp: int | str, body: bytes) -> str:
    """The X-Dealflow-Signature value a sender computes for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_SCHEME}{digest}"


def _same(given: bytes, expected: bytes) -> bool:
    # Digests first, so that the comparison takes as long for any length of key.
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest())


def _matching_name(
    candidates: Mapping[str, SecretStr], matches: Callable[[bytes], bool]
) -> str | None:
    """The name whose secret ``matches``; every secret is tried, so timing tells nothing."""
    found = None
    for name, secret in candidates.items():
        if matches(secret.get_secret_value().encode()):
            found = found or name
    return found


def identify_client(
    credentials: IntakeCredentials,
    api_keys: Mapping[str, SecretStr],
    webhook_secrets: Mapping[str, SecretStr],
    now: dt.datetime,
    tolerance_seconds: int,
) -> str:
    """The name of the client the request comes from, e.g. ``api-key crm``; raises
    IntakeAuthError saying what is wrong. Every credential presented must be valid."""
    if not api_keys and not webhook_secrets:
        raise IntakeAuthError(
            AuthProblem.NOT_CONFIGURED,
            "Deal intake over HTTP is not configured on this server: operations must set "
            "DEALFLOW_INTAKE_API_KEYS or DEALFLOW_INTAKE_WEBHOOK_SECRETS.",
        )
    if credentials.api_key is None and credentials.signature is None:
        raise IntakeAuthError(
            AuthProblem.MISSING,
            f"No credentials: send your API key in the {API_KEY_HEADER} header, or sign the "
            f"body ({SIGNATURE_HEADER} and {TIMESTAMP_HEADER} headers).",
        )
    clients = []
    if credentials.api_key is not None:
        given = credentials.api_key.encode()
        name = _matching_name(api_keys, lambda key: _same(given, key))
        if name is None:
            raise IntakeAuthError(AuthProblem.INVALID, "The API key is not valid.")
        clients.append(f"api-key {name}")
    if credentials.signature is not None:
        clients.append(
            "webhook "
            + _signer(credentials, webhook_secrets, now=now, tolerance_seconds=tolerance_seconds)
        )
    return ", ".join(clients)


def _signer(
    credentials: IntakeCredentials,
    secrets: Mapping[str, SecretStr],
    *,
    now: dt.datetime,
    tolerance_seconds: int,
) -> str:
    if not secrets:
        raise IntakeAuthError(
            AuthProblem.INVALID,
            "Signed webhooks are not configured on this server: use an API key.",
        )
    stamp = (credentials.timestamp or "").strip()
    if not stamp.isdigit():
        raise IntakeAuthError(
            AuthProblem.MISSING if credentials.timestamp is None else AuthProblem.INVALID,
            f"A signed request needs {TIMESTAMP_HEADER}: the time it was sent, in Unix seconds.",
        )
    skew = abs(now.timestamp() - int(stamp))
    if skew > tolerance_seconds:
        raise IntakeAuthError(
            AuthProblem.INVALID,
            f"{TIMESTAMP_HEADER} is {skew:.0f} s away from the server's clock (at most "
            f"{tolerance_seconds} s allowed): sign each request when you send it.",
        )
    signature = (credentials.signature or "").strip()
    if not signature.startswith(SIGNATURE_SCHEME):
        raise IntakeAuthError(
            AuthProblem.INVALID,
            f"{SIGNATURE_HEADER} must read '{SIGNATURE_SCHEME}<hex HMAC-SHA256>'.",
        )
    given = signature.encode()
    name = _matching_name(
        secrets,
        lambda secret: _same(given, signature_for(secret, stamp, credentials.body).encode()),
    )
    if name is None:
        raise IntakeAuthError(
            AuthProblem.INVALID,
            "The signature does not match the body: sign the exact bytes you send, "
            f"prefixed with the {TIMESTAMP_HEADER} value and a dot.",
        )
    return name
