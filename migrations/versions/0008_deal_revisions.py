"""deal revisions: a rejected deal revised and submitted again

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 21:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.tables

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every deal and approval stored so far is revision 1: the server default fills them
    # in, and code that does not know revisions yet keeps writing revision 1.
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))
        batch_op.drop_constraint("uq_approvals_deal_id_gate", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_approvals_deal_id_revision_gate"), ["deal_id", "revision", "gate"]
        )
    op.create_table(
        "deal_revisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=True),
        sa.Column("outcome", sa.String(length=40), nullable=True),
        sa.Column("outcome_reason", sa.Text(), nullable=True),
        sa.Column("submitted_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("replaced_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_deal_revisions_deal_id_deals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_revisions")),
        sa.UniqueConstraint("deal_id", "revision", name=op.f("uq_deal_revisions_deal_id_revision")),
    )
    with op.batch_alter_table("deal_revisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deal_revisions_deal_id"), ["deal_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deal_revisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deal_revisions_deal_id"))
    op.drop_table("deal_revisions")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_constraint("uq_approvals_deal_id_revision_gate", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_approvals_deal_id_gate"), ["deal_id", "gate"]
        )
        batch_op.drop_column("revision")
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_column("revision")
