"""Cache hits: `evaluations.cached_from` (the evaluation a reused result came from) and the index
behind `Store.cached_result` (architecture, task, fidelity, seed, status).

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-20
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite cannot add a foreign key in place, so the table is copied (rows kept).
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("cached_from", sa.Integer, nullable=True))
        batch.create_foreign_key("fk_evaluations_cached_from", "evaluations", ["cached_from"], ["id"])
    op.create_index("ix_evaluations_cache", "evaluations", ["arch_id", "task", "steps", "seed", "status"])


def downgrade() -> None:
    op.drop_index("ix_evaluations_cache", table_name="evaluations")
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_constraint("fk_evaluations_cached_from", type_="foreignkey")
        batch.drop_column("cached_from")
