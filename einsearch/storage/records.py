"""What the store hands back: plain frozen dataclasses, detached from any database session."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from einsearch.storage.models import Architecture, Evaluation, FidelityCorrelation, Search

# Names of metrics where lower is better, for `--metric` on a metric that is not an evaluation's main one.
LOWER_IS_BETTER = frozenset({"loss", "val_loss", "train_loss", "perplexity", "ppl", "bpc", "bpb", "bits_per_byte",
                             "error", "mse", "mae", "nll"})


@dataclass(frozen=True)
class SearchRecord:
    id: int
    name: str
    task: str
    strategy: str
    config: dict[str, Any]
    seed: int
    status: str
    budget: int | None
    code_version: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Search) -> "SearchRecord":
        return cls(row.id, row.name, row.task, row.strategy, dict(row.config or {}), row.seed, row.status,
                   row.budget, row.code_version, row.created_at, row.updated_at)


@dataclass(frozen=True)
class SearchSummary:
    """A search with its evaluation counts (cache hits are evaluations reusing an earlier result)."""

    search: SearchRecord
    completed: int
    failed: int
    running: int
    cache_hits: int
    stale: bool = False  # 'running', but no driver has renewed it within the lease time (killed?)

    def to_dict(self) -> dict[str, Any]:
        s = self.search
        return {"name": s.name, "task": s.task, "strategy": s.strategy, "status": s.status, "seed": s.seed,
                "budget": s.budget, "completed": self.completed, "failed": self.failed, "running": self.running,
                "cache_hits": self.cache_hits, "stale": self.stale, "code_version": s.code_version,
                "created_at": s.created_at.isoformat(), "updated_at": s.updated_at.isoformat()}


@dataclass(frozen=True)
class ArchRecord:
    id: int
    hash: str
    text: str
    graph_hash: str | None
    params: int | None
    flops_per_token: int | None
    depth: int | None
    ops: tuple[str, ...]

    @classmethod
    def of(cls, row: Architecture) -> "ArchRecord":
        return cls(row.id, row.hash, row.text, row.graph_hash, row.params, row.flops_per_token, row.depth,
                   tuple(row.ops or ()))


@dataclass(frozen=True)
class EvaluationRecord:
    id: int
    search: str | None  # the search's name
    arch_hash: str
    arch: str  # canonical architecture string
    task: str
    steps: int
    seed: int
    status: str
    metric_name: str | None
    metric: float | None
    best_metric: float | None
    higher_is_better: bool
    loss: float | None
    metrics: dict[str, Any]
    curve: list[Any]
    params: int | None
    flops_per_token: int | None
    wall_time_s: float | None
    train_time_s: float | None
    tokens_per_s: float | None
    peak_mem_bytes: int | None
    host: str | None
    device: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    weights_path: str | None
    cached_from: int | None
    node_id: str | None = None  # the Ray node that trained it
    lr: float | None = None  # the peak learning rate trained at; None: the task's recipe rate

    @classmethod
    def of(cls, row: Evaluation) -> "EvaluationRecord":
        return cls(
            id=row.id, search=row.search.name if row.search is not None else None, arch_hash=row.arch.hash,
            arch=row.arch.text, task=row.task, steps=row.steps, seed=row.seed, status=row.status,
            metric_name=row.metric_name, metric=row.metric, best_metric=row.best_metric,
            higher_is_better=bool(row.higher_is_better), loss=row.loss, metrics=dict(row.metrics or {}),
            curve=list(row.curve or []), params=row.params if row.params is not None else row.arch.params,
            flops_per_token=row.flops_per_token if row.flops_per_token is not None else row.arch.flops_per_token,
            wall_time_s=row.wall_time_s, train_time_s=row.train_time_s, tokens_per_s=row.tokens_per_s,
            peak_mem_bytes=row.peak_mem_bytes, host=row.host, device=row.device, error=row.error,
            created_at=row.created_at, finished_at=row.finished_at, weights_path=row.weights_path,
            cached_from=row.cached_from, node_id=row.node_id, lr=row.lr)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("created_at", "finished_at"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        return out


@dataclass(frozen=True)
class LeaderboardRow:
    """One architecture's best evaluation; `score` is the ranked value, `rank` starts at 1."""

    rank: int
    score: float
    metric_name: str
    evaluation: EvaluationRecord

    def to_dict(self) -> dict[str, Any]:
        e = self.evaluation
        return {"rank": self.rank, "metric": self.metric_name, "value": self.score, "evaluation": e.id,
                "arch_hash": e.arch_hash, "params": e.params, "steps": e.steps, "seed": e.seed, "task": e.task,
                "search": e.search, "lr": e.lr, "flops_per_token": e.flops_per_token, "wall_time_s": e.wall_time_s,
                "arch": e.arch}


@dataclass(frozen=True)
class LineageRecord:
    child_hash: str
    parent_hash: str
    op: str
    search: str | None


@dataclass(frozen=True)
class FidelityRecord:
    """Spearman's rho between the rankings of the same candidates after `low_steps` and `high_steps`."""

    id: int
    task: str
    low_steps: int
    high_steps: int
    spearman: float
    n: int  # candidates with a result at both budgets
    search: str | None  # the run whose evaluations were ranked
    created_at: datetime

    @classmethod
    def of(cls, row: FidelityCorrelation) -> "FidelityRecord":
        return cls(row.id, row.task, row.low_steps, row.high_steps, row.spearman, row.n,
                   row.search.name if row.search is not None else None, row.created_at)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["created_at"] = self.created_at.isoformat()
        return out
