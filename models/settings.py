"""Dealflow settings, read from ``DEALFLOW_*`` environment variables (or a ``.env`` file).

Every default is the embedded demo stack: SQLite under the data folder, a local mail
catcher on port 1025, a local Prefect server on port 4200.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INTAKE_CLIENT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,50}")
MIN_SIGNING_SECRET_BYTES = 32  # as strong as the HMAC-SHA256 it keys
MIN_FINANCE_PASSWORD = 12


class Settings(BaseSettings):
    # Errors leave out the values given: some of them are secrets.
    model_config = SettingsConfigDict(
        env_prefix="DEALFLOW_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Field(
        default=Path(".dealflow"),
        description="Folder for the embedded stack's data: databases, mail, Prefect's home.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of Dealflow's own database; SQLite in the data folder if empty.",
    )
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["none", "starttls", "ssl"] = "none"
    smtp_timeout_seconds: float = 10.0
    mail_from: str = Field(default="dealflow@example.com", description="Sender address.")
    mail_from_name: str = Field(
        default="Dealflow",
        description="The sender's name on the From header of every email; empty: the address alone.",
    )
    actor: str = Field(
        default="",
        description="Who the CLI records as having done what it records (its --actor "
        "default); empty: the login name of the operating-system user.",
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where approvers reach the web service; links in emails start with it.",
    )
    signing_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key for approval links; generated into the data folder if unset.",
    )
    previous_signing_secret: SecretStr | None = Field(
        default=None,
        description="The signing secret before the last rotation: links it signed are still "
        "accepted while it is set (nothing new is signed with it).",
    )
    legacy_links_until: dt.date | None = Field(
        default=None,
        description="From this day on, links in the format of releases before key ids are "
        "refused; unset, each works until it expires.",
    )
    link_ttl_hours: int = Field(default=14 * 24, ge=1)
    signing_link_ttl_days: int = Field(
        default=60,
        ge=1,
        description="How long a sales rep's link to record the signed contract works; "
        "`dealflow deal sign` records it without one.",
    )
    acceptance_link_ttl_days: int = Field(
        default=120,
        ge=1,
        description="How long a delivery manager's acceptance link works; "
        "`dealflow deal renew-acceptance-link` mails a fresh one.",
    )
    finance_users: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Finance page logins, name -> password (JSON). If empty, one user "
        "'finance' with a password generated into the data folder.",
    )
    matrix_path: Path = Field(
        default=PROJECT_ROOT / "config" / "matrix.yaml",
        description="The responsibility matrix: people, roles, gates.",
    )
    prefect_api_url: str = "http://127.0.0.1:4200/api"
    deployment: str = Field(
        default="deal-handoff/deal-handoff", description="Deployment that runs one deal."
    )
    resume_wait_seconds: float = Field(
        default=10.0,
        description="How long a decision waits for a run that is about to reach its gate.",
    )

    stalled_run_seconds: int = Field(
        default=300,
        ge=60,
        description="A Dealflow run that is Running or Pending with no sign of life (state "
        "change or heartbeat) for this long lost its process, e.g. with a killed worker: the "
        "sweep schedules it again. Keep it above the workers' PREFECT_FLOWS_HEARTBEAT_FREQUENCY.",
    )
    max_run_recoveries: int = Field(
        default=5,
        ge=1,
        description="How often one run is scheduled again after losing its process before it "
        "is left for operations to look at.",
    )

    intake_api_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='Named API keys for POST /api/deals, as JSON: {"crm": "<key>"}. The name '
        "goes on each deal's timeline; remove it to revoke its key. None: intake over HTTP is off.",
    )
    intake_webhook_secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Named shared secrets for signed webhooks (X-Dealflow-Signature), as JSON.",
    )
    intake_signature_tolerance_seconds: int = Field(
        default=300, ge=1, description="How far a signed webhook's timestamp may be from now."
    )

    api_docs: bool = Field(
        default=False,
        description="Serve the API's schema (/openapi.json) and its documentation pages "
        "(/api/docs, /redoc); off in production.",
    )

    # Limits of the web service, counted in each process (web/rate_limit.py).
    login_failures_per_user: int = Field(
        default=5,
        ge=1,
        description="Failed finance logins per user name within the window; then 429.",
    )
    login_failures_per_address: int = Field(
        default=20,
        ge=1,
        description="Failed finance logins per client address within the window; then 429.",
    )
    login_failure_window_seconds: int = Field(
        default=900, ge=1, description="The window failed logins are counted in."
    )
    link_requests_per_minute: int = Field(
        default=60,
        ge=1,
        description="Requests per client address per minute to the link pages (approval, "
        "acceptance, deal page); then 429.",
    )

    @field_validator("intake_api_keys", "intake_webhook_secrets")
    @classmethod
    def _strong_named_secrets(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in value.items():
            if not INTAKE_CLIENT_NAME.fullmatch(name):
                raise ValueError(
                    f"client name {name!r}: use 1-50 letters, digits, dots, dashes or underscores"
                )
            if len(secret.get_secret_value()) < 16:
                raise ValueError(f"the secret of {name!r} is too short: use 16 characters or more")
        return value

    @field_validator("signing_secret", "previous_signing_secret")
    @classmethod
    def _strong_signing_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SIGNING_SECRET_BYTES:
            raise ValueError(
                f"the signing secret is too short: use {MIN_SIGNING_SECRET_BYTES} bytes or "
                "more, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("finance_users")
    @classmethod
    def _strong_finance_passwords(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in value.items():
            if len(secret.get_secret_value()) < MIN_FINANCE_PASSWORD:
                raise ValueError(
                    f"the finance password of {name!r} is too short: use "
                    f"{MIN_FINANCE_PASSWORD} characters or more"
                )
        return value

    @field_validator("public_base_url", "prefect_api_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.resolve() / 'dealflow.db'}"

    @property
    def prefect_ui_url(self) -> str:
        return self.prefect_api_url.removesuffix("/api")

    def signing_key(self) -> bytes:
        """The link-signing key: the configured secret, or one generated once per data folder."""
        if self.signing_secret is not None:
            return self.signing_secret.get_secret_value().encode()
        return self._generated_secret("signing-secret").encode()

    def previous_signing_key(self) -> bytes | None:
        """The secret before the last rotation, while links it signed are accepted."""
        if self.previous_signing_secret is None:
            return None
        return self.previous_signing_secret.get_secret_value().encode()

    def finance_logins(self) -> dict[str, str]:
        """Who may use the finance page: the configured users, or ``finance`` with a
        password generated once per data folder (``<data folder>/finance-password``)."""
        if self.finance_users:
            return {name: secret.get_secret_value() for name, secret in self.finance_users.items()}
        return {"finance": self._generated_secret("finance-password")}

    def _generated_secret(self, name: str) -> str:
        key_file = self.data_dir.resolve() / name
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            candidate = key_file.with_name(f"{key_file.name}.{secrets.token_hex(4)}")
            # Created readable by the owner only, before the secret is written into it.
            descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(32 if name == "signing-secret" else 12))
            # os.link refuses to replace: when two processes race, the first key stays.
            with contextlib.suppress(FileExistsError):
                os.link(candidate, key_file)
            candidate.unlink()
        return key_file.read_text().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
