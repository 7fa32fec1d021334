"""The database schema: SQLAlchemy 2.x declarative models (the head revision of the migrations).

Optuna keeps its own tables in the same database (`studies`, `trials`, ..., `alembic_version`), so
our names never clash with them and our Alembic version table is `einsearch_alembic_version`.
Every change to these models needs a migration in `migrations/versions/`.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

VERSION_TABLE = "einsearch_alembic_version"
# The newest migration's revision: a database already there opens without importing Alembic (a
# test keeps this equal to the head of migrations/versions/).
SCHEMA_HEAD = "0005"
EVAL_STATUSES = ("running", "ok", "failed")


def utcnow() -> datetime:
    """Naive UTC: SQLite drops time zones, so every row stores UTC without one."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Search(Base):
    __tablename__ = "searches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task: Mapped[str] = mapped_column(String(500))
    strategy: Mapped[str] = mapped_column(String(100))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="created")
    budget: Mapped[int | None] = mapped_column(Integer)
    code_version: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Architecture(Base):
    __tablename__ = "architectures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    text: Mapped[str] = mapped_column(Text)  # the canonical architecture string
    graph_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # Params and FLOPs depend on the task's stem and head: these are from the first check recorded;
    # each evaluation keeps its own.
    params: Mapped[int | None] = mapped_column(BigInteger)
    flops_per_token: Mapped[int | None] = mapped_column(BigInteger)
    depth: Mapped[int | None] = mapped_column(Integer)
    ops: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    op_rows: Mapped[list["ArchitectureOp"]] = relationship(cascade="all, delete-orphan")


class ArchitectureOp(Base):
    """One row per (architecture, primitive used): `--uses MIXER` is an indexed join, not a JSON scan."""

    __tablename__ = "architecture_ops"

    arch_id: Mapped[int] = mapped_column(ForeignKey("architectures.id", ondelete="CASCADE"), primary_key=True)
    op: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)


class Evaluation(Base):
    __tablename__ = "evaluations"
    __table_args__ = (
        # Added by revision 0002: the lookup behind `Store.cached_result`.
        Index("ix_evaluations_cache", "arch_id", "task", "steps", "seed", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_id: Mapped[int | None] = mapped_column(ForeignKey("searches.id"), index=True)
    arch_id: Mapped[int] = mapped_column(ForeignKey("architectures.id"), index=True)
    task: Mapped[str] = mapped_column(String(500), index=True)  # the task's canonical spec
    steps: Mapped[int] = mapped_column(Integer)  # fidelity: training steps
    seed: Mapped[int] = mapped_column(Integer, default=0)  # training seed
    status: Mapped[str] = mapped_column(String(20), default="running", index=True)
    metric_name: Mapped[str | None] = mapped_column(String(100))
    metric: Mapped[float | None] = mapped_column(Float)
    best_metric: Mapped[float | None] = mapped_column(Float)
    higher_is_better: Mapped[bool] = mapped_column(Boolean, default=True)
    loss: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # every metric reported
    curve: Mapped[list[Any]] = mapped_column(JSON, default=list)  # learning curve points
    params: Mapped[int | None] = mapped_column(BigInteger)
    flops_per_token: Mapped[int | None] = mapped_column(BigInteger)
    wall_time_s: Mapped[float | None] = mapped_column(Float)
    train_time_s: Mapped[float | None] = mapped_column(Float)
    tokens_per_s: Mapped[float | None] = mapped_column(Float)
    peak_mem_bytes: Mapped[int | None] = mapped_column(BigInteger)
    host: Mapped[str | None] = mapped_column(String(255))
    device: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    weights_path: Mapped[str | None] = mapped_column(String(1000))
    weights_sha256: Mapped[str | None] = mapped_column(String(64))
    # Added by revision 0002: set when the result was reused from an earlier evaluation (a cache hit).
    cached_from: Mapped[int | None] = mapped_column(ForeignKey("evaluations.id", name="fk_evaluations_cached_from"))
    # Added by revision 0003: the Ray node that trained it (None: trained outside Ray, or unknown).
    node_id: Mapped[str | None] = mapped_column(String(64))
    # Added by revision 0004: the peak learning rate trained at (None: the task's recipe rate); in the cache key.
    lr: Mapped[float | None] = mapped_column(Float)
    # Added by revision 0005: the training recipe's key (`evaluators.recipe_key`); the cache matches it.
    recipe: Mapped[str | None] = mapped_column(String(32))

    arch: Mapped[Architecture] = relationship()
    search: Mapped[Search | None] = relationship()


class FidelityCorrelation(Base):
    """Added by revision 0004: how well the ranking at a low step budget predicts the ranking at a
    higher one (Spearman's rho over the same candidates), measured by `einsearch fidelity`."""

    __tablename__ = "fidelity_correlations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(500), index=True)  # the task's canonical spec
    low_steps: Mapped[int] = mapped_column(Integer)
    high_steps: Mapped[int] = mapped_column(Integer)
    spearman: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)  # candidates with a result at both budgets
    search_id: Mapped[int | None] = mapped_column(ForeignKey("searches.id"))  # the measuring run's evaluations
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    search: Mapped[Search | None] = relationship()


class Lineage(Base):
    """One row per (child, parent): the mutation or crossover that made the child."""

    __tablename__ = "lineage"
    __table_args__ = (UniqueConstraint("child_id", "parent_id", "op", "search_id", name="uq_lineage_edge"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("architectures.id"), index=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("architectures.id"), index=True)
    op: Mapped[str] = mapped_column(String(100))
    search_id: Mapped[int | None] = mapped_column(ForeignKey("searches.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Lease(Base):
    """Added by revision 0003. One row per training run (architecture, task, steps, seed) that a driver
    is training now: whoever holds the lease trains it, the others wait for its result. The holder
    renews `expires_at` with a heartbeat; an expired lease (a killed driver) is taken over."""

    __tablename__ = "leases"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the run's identity
    owner: Mapped[str] = mapped_column(String(200), index=True)  # host:pid:random of the driver
    search_id: Mapped[int | None] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"), index=True)
    evaluation_id: Mapped[int | None] = mapped_column(Integer)  # the holder's evaluation row, once started
    acquired_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
