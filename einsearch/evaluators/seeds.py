"""Evaluate one candidate on several training seeds and report the mean (a search's `--train-seeds N`).

On recall tasks like MQAR a model sits on a plateau and then jumps, at a step that varies by seed, so
one seed can rank a lucky draw first. Trained on seeds `candidate.seed, candidate.seed + 1, ...`, the
candidate's metric is the mean of their final metrics, and each seed's own value is kept beside it
(`extra_metrics`, named by `seed_metric`). The learning curve is the mean at each curve step. A failing
seed fails the whole candidate with that seed's reason: a model that diverges on one seed in three is
not one to keep. Budgets (time, memory) apply per seed. The first seed's weights are the ones kept.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable

from einsearch.evaluators.types import Candidate, Result


def seed_metric(metric: str, seed: int) -> str:
    """The name a seed's own value of `metric` is stored under, e.g. accuracy_seed1."""
    return f"{metric}_seed{seed}"


def seed_values(metric: str, extra_metrics: dict[str, float | None], first: int, n: int) -> dict[int, float | None]:
    """The per-seed values of an evaluation trained on seeds first..first+n-1, from its extra metrics."""
    return {seed: extra_metrics.get(seed_metric(metric, seed)) for seed in range(first, first + n)}


def evaluate_seeds(candidate: Candidate, n: int, evaluate: Callable[[Candidate], Result]) -> Result:
    """Train `candidate` on `n` consecutive seeds with `evaluate` (one seed each); their mean as one Result."""
    started = time.perf_counter()
    runs: list[Result] = []
    for seed in range(candidate.seed, candidate.seed + n):
        result = evaluate(dataclasses.replace(candidate, seed=seed))
        if not result.ok:
            return dataclasses.replace(result, error=f"training seed {seed}: {result.error}",
                                       wall_time_s=time.perf_counter() - started, weights=None)
        runs.append(result)
    first = runs[0]
    curves = [dict(r.curve) for r in runs]
    curve = [(step, statistics.mean(c.get(step, r.metric) for c, r in zip(curves, runs))) for step, _ in first.curve]
    metric = statistics.mean(r.metric for r in runs)
    per_seed = {seed_metric(first.metric_name, candidate.seed + i): r.metric for i, r in enumerate(runs)}
    extra = {name: statistics.mean(r.extra_metrics[name] for r in runs)
             if all(r.extra_metrics.get(name) is not None for r in runs) else None for name in first.extra_metrics}
    losses = [r.loss for r in runs if r.loss is not None]
    return dataclasses.replace(
        first, metric=metric, best_metric=max((m for _, m in curve), default=metric), curve=curve,
        loss=statistics.mean(losses) if losses else None, extra_metrics={**extra, **per_seed},
        wall_time_s=time.perf_counter() - started, train_time_s=sum(r.train_time_s for r in runs),
        eval_time_s=sum(r.eval_time_s for r in runs),
        peak_mem_bytes=max((r.peak_mem_bytes for r in runs if r.peak_mem_bytes is not None), default=None))
