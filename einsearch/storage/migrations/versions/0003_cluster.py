"""Clusters and several drivers: `evaluations.node_id` (the Ray node that trained a candidate) and the
`leases` table (who is training which run now, with a heartbeat and an expiry).

Revision ID: 0003_cluster
Revises: 0002
Create Date: 2026-12-02
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_cluster"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("node_id", sa.String(64), nullable=True))
    op.create_table(
        "leases",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("search_id", sa.Integer, sa.ForeignKey("searches.id", ondelete="CASCADE"), nullable=True),
        sa.Column("evaluation_id", sa.Integer, nullable=True),
        sa.Column("acquired_at", sa.DateTime, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_leases_owner", "leases", ["owner"])
    op.create_index("ix_leases_search_id", "leases", ["search_id"])
    op.create_index("ix_leases_expires_at", "leases", ["expires_at"])


def downgrade() -> None:
    op.drop_table("leases")
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("node_id")
