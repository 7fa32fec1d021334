"""The first schema: searches, architectures (+ the ops each uses), evaluations, lineage.

Revision ID: 0001
Revises:
Create Date: 2026-05-20
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "searches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("task", sa.String(500), nullable=False),
        sa.Column("strategy", sa.String(100), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("budget", sa.Integer),
        sa.Column("code_version", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "architectures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("graph_hash", sa.String(64)),
        sa.Column("params", sa.BigInteger),
        sa.Column("flops_per_token", sa.BigInteger),
        sa.Column("depth", sa.Integer),
        sa.Column("ops", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_architectures_graph_hash", "architectures", ["graph_hash"])
    op.create_table(
        "architecture_ops",
        sa.Column("arch_id", sa.Integer, sa.ForeignKey("architectures.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("op", sa.String(100), primary_key=True),
    )
    op.create_index("ix_architecture_ops_op", "architecture_ops", ["op"])
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("search_id", sa.Integer, sa.ForeignKey("searches.id")),
        sa.Column("arch_id", sa.Integer, sa.ForeignKey("architectures.id"), nullable=False),
        sa.Column("task", sa.String(500), nullable=False),
        sa.Column("steps", sa.Integer, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("metric_name", sa.String(100)),
        sa.Column("metric", sa.Float),
        sa.Column("best_metric", sa.Float),
        sa.Column("higher_is_better", sa.Boolean, nullable=False),
        sa.Column("loss", sa.Float),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("curve", sa.JSON, nullable=False),
        sa.Column("params", sa.BigInteger),
        sa.Column("flops_per_token", sa.BigInteger),
        sa.Column("wall_time_s", sa.Float),
        sa.Column("train_time_s", sa.Float),
        sa.Column("tokens_per_s", sa.Float),
        sa.Column("peak_mem_bytes", sa.BigInteger),
        sa.Column("host", sa.String(255)),
        sa.Column("device", sa.String(100)),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("weights_path", sa.String(1000)),
        sa.Column("weights_sha256", sa.String(64)),
    )
    op.create_index("ix_evaluations_search_id", "evaluations", ["search_id"])
    op.create_index("ix_evaluations_arch_id", "evaluations", ["arch_id"])
    op.create_index("ix_evaluations_task", "evaluations", ["task"])
    op.create_index("ix_evaluations_status", "evaluations", ["status"])
    op.create_table(
        "lineage",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("child_id", sa.Integer, sa.ForeignKey("architectures.id"), nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("architectures.id"), nullable=False),
        sa.Column("op", sa.String(100), nullable=False),
        sa.Column("search_id", sa.Integer, sa.ForeignKey("searches.id")),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("child_id", "parent_id", "op", "search_id", name="uq_lineage_edge"),
    )
    op.create_index("ix_lineage_child_id", "lineage", ["child_id"])
    op.create_index("ix_lineage_parent_id", "lineage", ["parent_id"])


def downgrade() -> None:
    for table in ("lineage", "evaluations", "architecture_ops", "architectures", "searches"):
        op.drop_table(table)
