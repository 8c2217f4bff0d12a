"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import os
import subprocess
import sys

import sqlalchemy as sa
from alembic import command

from dealflow.infra.db import alembic_config
from models.settings import PROJECT_ROOT


def test_migrations_match_the_models(database_url: str) -> None:
    command.check(alembic_config(database_url))  # raises if the models drifted


def test_the_schema_has_its_uniqueness_guards(database_url: str) -> None:
    inspector = sa.inspect(sa.create_engine(database_url))
    unique = {
        table: {tuple(c["column_names"]) for c in inspector.get_unique_constraints(table)}
        for table in (
            "approvals",
            "deal_revisions",
            "invoices",
            "sent_messages",
            "stage_transitions",
            "payments",
            "dunning_letters",
        )
    }
    assert ("deal_id", "revision", "gate") in unique["approvals"]  # a gate per revision
    assert ("deal_id", "revision") in unique["deal_revisions"]
    assert ("deal_id", "sequence") in unique["invoices"] and ("number",) in unique["invoices"]
    assert ("key",) in unique["sent_messages"]
    assert ("deal_id", "key") in unique["stage_transitions"]
    assert ("key",) in unique["payments"]  # a payment applies once
    assert ("invoice_id", "level") in unique["dunning_letters"]  # each level once, ever


def test_db_upgrade_takes_a_database_password_with_percent_signs(postgres_url: str) -> None:
    """``p@ss%word`` travels percent-encoded in the URL and reaches the driver intact."""
    url = sa.make_url(postgres_url).set(password="p@ss%word")
    encoded = url.render_as_string(hide_password=False)
    assert "p%40ss%25word" in encoded
    assert alembic_config(encoded).get_main_option("sqlalchemy.url") == encoded
    upgraded = subprocess.run(
        [sys.executable, "-m", "dealflow", "db", "upgrade"],
        env={**os.environ, "DEALFLOW_DATABASE_URL": encoded},
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert upgraded.returncode == 0, upgraded.stderr[-2000:]
