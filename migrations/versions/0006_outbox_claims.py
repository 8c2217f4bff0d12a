"""outbox claims: a message is claimed, the claim committed, then sent

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 21:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Additive only: the previous release's code ignores the column and keeps working
    # during a rolling upgrade.
    with op.batch_alter_table("sent_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("claimed_at", models.tables.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sent_messages", schema=None) as batch_op:
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("claimed_at")
