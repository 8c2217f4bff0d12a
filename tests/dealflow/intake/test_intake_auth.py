"""Who sent a deal: named API keys and signed webhooks, decided with an injected clock."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import subprocess
import sys

import pytest
from pydantic import SecretStr, ValidationError

from dealflow.intake.auth import (
    AuthProblem,
    IntakeAuthError,
    IntakeCredentials,
    identify_client,
    signature_for,
)
from models.settings import PROJECT_ROOT, Settings

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
KEYS = {"hubspot": SecretStr("hubspot-key-0123456789"), "ops": SecretStr("ops-key-0123456789ab")}
SECRETS = {
    "crm-old": SecretStr("old-secret-0123456789"),
    "crm-new": SecretStr("new-secret-0123456789"),
}
BODY = b'{"deal_id": "ACME-2026-014"}'
INTAKE = ("POST", "/api/deals")


def client_of(
    api_key: str | None = None,
    signature: str | None = None,
    timestamp: str | None = None,
    body: bytes = BODY,
    keys: dict[str, SecretStr] = KEYS,
    secrets: dict[str, SecretStr] = SECRETS,
    request: tuple[str, str] = INTAKE,
) -> str:
    method, target = request
    credentials = IntakeCredentials(api_key, signature, timestamp, method, target, body)
    return identify_client(credentials, keys, secrets, NOW, tolerance_seconds=300)


def problem_of(**kwargs: object) -> tuple[AuthProblem, str]:
    with pytest.raises(IntakeAuthError) as caught:
        client_of(**kwargs)  # type: ignore[arg-type]
    return caught.value.problem, caught.value.message


def crm_signature(
    secret: str, stamp: int, body: bytes = BODY, request: tuple[str, str] = INTAKE
) -> str:
    """As a CRM computes it, written out without Dealflow's helper: timestamp, method,
    path with query and body, joined by line feeds."""
    method, target = request
    message = f"{stamp}\n{method}\n{target}\n".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def test_each_key_names_its_client() -> None:
    assert client_of(api_key="hubspot-key-0123456789") == "api-key hubspot"
    assert client_of(api_key="ops-key-0123456789ab") == "api-key ops"
    assert problem_of(api_key="hubspot-key-012345678") == (
        AuthProblem.INVALID,
        "The API key is not valid.",
    )


def test_nothing_configured_is_closed_not_open() -> None:
    problem, message = problem_of(api_key="anything", keys={}, secrets={})
    assert problem is AuthProblem.NOT_CONFIGURED and "not configured" in message


def test_no_credentials_says_how_to_send_them() -> None:
    problem, message = problem_of()
    assert problem is AuthProblem.MISSING
    assert "X-API-Key" in message and "X-Dealflow-Signature" in message


def test_our_signature_is_the_one_a_crm_computes() -> None:
    stamp = int(NOW.timestamp())
    assert signature_for(b"new-secret-0123456789", stamp, *INTAKE, BODY) == crm_signature(
        "new-secret-0123456789", stamp
    )


def test_either_secret_signs_while_a_secret_is_rotated() -> None:
    stamp = int(NOW.timestamp())
    for name, secret in (
        ("crm-old", "old-secret-0123456789"),
        ("crm-new", "new-secret-0123456789"),
    ):
        signature = crm_signature(secret, stamp)
        assert client_of(signature=signature, timestamp=str(stamp)) == f"webhook {name}"


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-300, True), (300, True), (-301, False), (301, False)]
)
def test_the_timestamp_must_be_within_the_tolerance(offset: int, accepted: bool) -> None:
    stamp = int(NOW.timestamp()) + offset
    signature = crm_signature("new-secret-0123456789", stamp)
    if accepted:
        assert client_of(signature=signature, timestamp=str(stamp)) == "webhook crm-new"
    else:
        problem, message = problem_of(signature=signature, timestamp=str(stamp))
        assert problem is AuthProblem.INVALID and "301 s away" in message


@pytest.mark.parametrize(
    ("signature", "timestamp", "words"),
    [
        ("sha256=" + "0" * 64, "now", "does not match the request"),
        ("md5=abc", "now", "must read 'sha256=<hex HMAC-SHA256>'"),
        ("sha256=abc", None, "needs X-Dealflow-Timestamp"),
        ("sha256=abc", "yesterday", "needs X-Dealflow-Timestamp"),
        ("sha256=abc", "\u00b2", "needs X-Dealflow-Timestamp"),  # a digit, not ASCII
    ],
)
def test_a_bad_signature_says_what_is_wrong(
    signature: str, timestamp: str | None, words: str
) -> None:
    stamp = str(int(NOW.timestamp())) if timestamp == "now" else timestamp
    _, message = problem_of(signature=signature, timestamp=stamp)
    assert words in message


def test_a_signature_of_another_body_is_refused() -> None:
    stamp = int(NOW.timestamp())
    signature = crm_signature("new-secret-0123456789", stamp, b"{}")
    _, message = problem_of(signature=signature, timestamp=str(stamp))
    assert "does not match the request" in message


@pytest.mark.parametrize(
    "used_for",
    [
        ("GET", "/api/deals/ANY-OTHER-DEAL"),
        ("POST", "/api/deals/DEAL-A"),
        ("GET", "/api/deals/DEAL-A?format=full"),
        ("GET", "/api/deals/DEAL-A/"),
        ("get", "/api/deals/deal-a"),
    ],
)
def test_a_signature_covers_the_method_and_the_path_with_its_query(
    used_for: tuple[str, str],
) -> None:
    stamp = int(NOW.timestamp())
    made_for = ("GET", "/api/deals/DEAL-A")
    signature = crm_signature("new-secret-0123456789", stamp, b"", made_for)
    assert client_of(signature=signature, timestamp=str(stamp), body=b"", request=made_for) == (
        "webhook crm-new"
    )
    problem, message = problem_of(
        signature=signature, timestamp=str(stamp), body=b"", request=used_for
    )
    assert problem is AuthProblem.INVALID
    assert "does not match the request" in message and used_for[1] in message


def test_a_signature_of_the_old_scheme_is_refused_and_told_so() -> None:
    stamp = int(NOW.timestamp())
    old = hmac.new(b"new-secret-0123456789", f"{stamp}.".encode() + BODY, hashlib.sha256)
    problem, message = problem_of(signature=f"sha256={old.hexdigest()}", timestamp=str(stamp))
    assert problem is AuthProblem.INVALID
    assert "old scheme" in message and "the method, the path with its query" in message


def test_signatures_are_refused_when_only_keys_are_configured() -> None:
    stamp = int(NOW.timestamp())
    signature = crm_signature("new-secret-0123456789", stamp)
    _, message = problem_of(signature=signature, timestamp=str(stamp), secrets={})
    assert "Signed webhooks are not configured" in message


def test_settings_refuse_short_secrets_and_odd_names_without_showing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEALFLOW_INTAKE_API_KEYS", '{"crm": "short-key"}')
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "too short" in str(caught.value) and "short-key" not in str(caught.value)
    monkeypatch.setenv("DEALFLOW_INTAKE_API_KEYS", "{}")
    monkeypatch.setenv("DEALFLOW_INTAKE_WEBHOOK_SECRETS", '{"a crm": "long-enough-secret-0123"}')
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "client name 'a crm'" in str(caught.value)
    assert "long-enough-secret-0123" not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        (
            "DEALFLOW_SIGNING_SECRET",
            "x",
            "DEALFLOW_SIGNING_SECRET: Value error, the signing secret is too short: use 32 bytes",
        ),
        ("DEALFLOW_SIGNING_SECRET", "s" * 31, "the signing secret is too short"),
        (
            "DEALFLOW_FINANCE_USERS",
            '{"fiona": "a"}',
            "the finance password of 'fiona' is too short: use 12 characters",
        ),
        ("DEALFLOW_FINANCE_USERS", '{"fiona": "elevenchars"}', "too short"),
    ],
)
def test_weak_secrets_stop_dealflow_at_start_with_a_clear_message(
    variable: str, value: str, words: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dealflow", "deal", "status", "ANY"],
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 2, result.stderr[-1000:]
    assert "Dealflow's settings are not valid" in result.stderr and words in result.stderr
    assert "Traceback" not in result.stderr and f'"{value}"' not in result.stderr
