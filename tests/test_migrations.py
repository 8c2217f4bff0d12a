"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from dealflow.db import alembic_config


def test_migrations_match_the_models(database_url: str) -> None:
    command.check(alembic_config(database_url))  # raises if the models drifted


def test_the_schema_has_its_uniqueness_guards(database_url: str) -> None:
    inspector = sa.inspect(sa.create_engine(database_url))
    unique = {
        table: {tuple(c["column_names"]) for c in inspector.get_unique_constraints(table)}
        for table in (
            "approvals",
            "invoices",
            "sent_messages",
            "stage_transitions",
            "payments",
            "dunning_letters",
        )
    }
    assert ("deal_id", "gate") in unique["approvals"]
    assert ("deal_id", "sequence") in unique["invoices"] and ("number",) in unique["invoices"]
    assert ("key",) in unique["sent_messages"]
    assert ("deal_id", "key") in unique["stage_transitions"]
    assert ("key",) in unique["payments"]  # a payment applies once
    assert ("invoice_id", "level") in unique["dunning_letters"]  # each level once, ever
