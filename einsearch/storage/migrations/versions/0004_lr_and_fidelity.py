"""Learning-rate grids and measured fidelity: `evaluations.lr` (the rate a run trained at, part of
the cache key; NULL for the task's recipe rate) and `fidelity_correlations` (Spearman's rho between
the rankings at two step budgets on a task).

Revision ID: 0004
Revises: 0003_cluster
Create Date: 2026-12-02
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003_cluster"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("lr", sa.Float, nullable=True))
    op.create_table(
        "fidelity_correlations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task", sa.String(500), nullable=False),
        sa.Column("low_steps", sa.Integer, nullable=False),
        sa.Column("high_steps", sa.Integer, nullable=False),
        sa.Column("spearman", sa.Float, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("search_id", sa.Integer, sa.ForeignKey("searches.id"), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_fidelity_correlations_task", "fidelity_correlations", ["task"])


def downgrade() -> None:
    op.drop_index("ix_fidelity_correlations_task", table_name="fidelity_correlations")
    op.drop_table("fidelity_correlations")
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("lr")
