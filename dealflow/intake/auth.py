"""Who is sending a deal over HTTP: a named API key, or a webhook signed with a shared secret.

A signed webhook carries two headers:

    X-Dealflow-Timestamp: <unix seconds when it was sent>
    X-Dealflow-Signature: sha256=<hex HMAC-SHA256 of the string to sign>

The string to sign is four parts, joined by line feeds (``\n``):

    <timestamp>
    <method, upper case, e.g. POST>
    <path and query exactly as on the request line, e.g. /api/deals/ACME-1?x=1>
    <the raw body, byte for byte (empty for a GET)>

The method and the path are part of it, so a signature made for one deal's status does
not open another's, nor a GET become a POST. The timestamp is part of it, so a captured
request cannot be replayed outside the tolerance window; inside it a replay only returns
the same deal again (intake is idempotent on the deal id). The scheme before this one
signed only ``<timestamp>.<body>``; it is no longer accepted, and a request signed that
way is told so.
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
    """What a request presented; None for a header it did not send. ``target`` is the
    path and query as the request line has them (``/api/deals/ACME-1?x=1``)."""

    api_key: str | None
    signature: str | None
    timestamp: str | None
    method: str = "GET"
    target: str = "/"
    body: bytes = b""


def string_to_sign(timestamp: int | str, method: str, target: str, body: bytes) -> bytes:
    """Timestamp, method, path with query and body, joined by line feeds."""
    return f"{timestamp}\n{method.upper()}\n{target}\n".encode() + body


def signature_for(
    secret: bytes, timestamp: int | str, method: str, target: str, body: bytes
) -> str:
    """The X-Dealflow-Signature value a sender computes for a request."""
    message = string_to_sign(timestamp, method, target, body)
    return f"{SIGNATURE_SCHEME}{hmac.new(secret, message, hashlib.sha256).hexdigest()}"


def _old_scheme_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """What the previous scheme signed (timestamp, a dot, the body): recognised only to
    say so, never accepted."""
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


def check_headers(
    credentials: IntakeCredentials,
    api_keys: Mapping[str, SecretStr],
    webhook_secrets: Mapping[str, SecretStr],
    now: dt.datetime,
    tolerance_seconds: int,
) -> None:
    """Everything that can be checked before the body is read: that intake is
    configured, that credentials were sent, the API key, and a signature's timestamp and
    form. Raises IntakeAuthError saying what is wrong. Nothing is read of a request that
    fails here, whatever its size."""
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
    if credentials.api_key is not None:
        _key_name(credentials.api_key, api_keys)
    if credentials.signature is not None:
        _check_signature_headers(credentials, webhook_secrets, now, tolerance_seconds)


def identify_client(
    credentials: IntakeCredentials,
    api_keys: Mapping[str, SecretStr],
    webhook_secrets: Mapping[str, SecretStr],
    now: dt.datetime,
    tolerance_seconds: int,
) -> str:
    """The name of the client the request comes from, e.g. ``api-key crm``; raises
    IntakeAuthError saying what is wrong. Every credential presented must be valid."""
    check_headers(credentials, api_keys, webhook_secrets, now, tolerance_seconds)
    clients = []
    if credentials.api_key is not None:
        clients.append(f"api-key {_key_name(credentials.api_key, api_keys)}")
    if credentials.signature is not None:
        clients.append(f"webhook {_signer(credentials, webhook_secrets)}")
    return ", ".join(clients)


def _key_name(api_key: str, api_keys: Mapping[str, SecretStr]) -> str:
    given = api_key.encode()
    name = _matching_name(api_keys, lambda key: _same(given, key))
    if name is None:
        raise IntakeAuthError(AuthProblem.INVALID, "The API key is not valid.")
    return name


def _check_signature_headers(
    credentials: IntakeCredentials,
    secrets: Mapping[str, SecretStr],
    now: dt.datetime,
    tolerance_seconds: int,
) -> None:
    if not secrets:
        raise IntakeAuthError(
            AuthProblem.INVALID,
            "Signed webhooks are not configured on this server: use an API key.",
        )
    stamp = (credentials.timestamp or "").strip()
    if not (stamp.isascii() and stamp.isdigit()):
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


def _signer(credentials: IntakeCredentials, secrets: Mapping[str, SecretStr]) -> str:
    stamp = (credentials.timestamp or "").strip()
    given = (credentials.signature or "").strip().encode()
    method, target, body = credentials.method, credentials.target, credentials.body
    name = _matching_name(
        secrets,
        lambda secret: _same(given, signature_for(secret, stamp, method, target, body).encode()),
    )
    if name is not None:
        return name
    if _matching_name(
        secrets, lambda secret: _same(given, _old_scheme_signature(secret, stamp, body).encode())
    ):
        raise IntakeAuthError(
            AuthProblem.INVALID,
            "The signature follows the old scheme (timestamp, a dot, the body), which is no "
            "longer accepted: sign the timestamp, the method, the path with its query and "
            "the body, joined by line feeds.",
        )
    raise IntakeAuthError(
        AuthProblem.INVALID,
        f"The signature does not match the request: sign the {TIMESTAMP_HEADER} value, "
        f"the method ({method.upper()}), the path with its query ({target}) and the exact "
        "body bytes you send, joined by line feeds.",
    )
