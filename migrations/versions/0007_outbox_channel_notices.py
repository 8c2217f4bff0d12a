"""outbox channel notices: an email's recipient may also get it in a messaging app

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 21:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Additive only: a channel notice leaves ``message`` NULL, so the previous release's
    # senders (which claim composed emails only) leave it alone during a rolling upgrade.
    with op.batch_alter_table("sent_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("notice", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sent_messages", schema=None) as batch_op:
        batch_op.drop_column("notice")
        batch_op.drop_column("channel")
