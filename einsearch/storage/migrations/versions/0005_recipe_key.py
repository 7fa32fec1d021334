"""Recipe key: `evaluations.recipe`, the training recipe a result was measured under (batch, schedule,
warm-up, betas, ... and the trainer's revision, hashed). The results cache matches it, so a result
trained under an older recipe is not served for a run under the current one. Rows stored before this
revision have none and are never reused.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("recipe", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("recipe")
