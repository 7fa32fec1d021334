"""Evaluate an aggregate task (one with `members()`, such as `mad`): one model per member task.

The score is MAD's: the mean final metric over a task's settings, then the mean over tasks. The
learning curve is the same two-level mean at each curve step. A failing member fails the whole
candidate with that member's reason. Budgets apply per member.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Callable

from einsearch.tasks import Task
from einsearch.evaluators.types import Candidate, Result


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def evaluate_members(candidate: Candidate, task: Task, evaluate: Callable[[Candidate], Result]) -> Result:
    """`evaluate` trains one member candidate (the trainer's, with the caller's budgets)."""
    started = time.perf_counter()
    by_name: dict[str, list[Result]] = defaultdict(list)
    train_time = 0.0
    last: Result | None = None
    for name, member in task.members():
        result = evaluate(Candidate(candidate.arch, member.spec, candidate.steps, candidate.seed))
        if not result.ok:
            return Result.failure(f"{member.spec}: {result.error}", metric_name=task.metric,
                                  wall_time_s=time.perf_counter() - started)
        by_name[name].append(result)
        train_time += result.train_time_s
        last = result
    metric = _mean([_mean([r.metric for r in rs]) for rs in by_name.values()])
    steps = [s for s, _ in last.curve]
    curve = [(step, _mean([_mean([dict(r.curve).get(step, r.metric) for r in rs]) for rs in by_name.values()]))
             for step in steps]
    every = [r for rs in by_name.values() for r in rs]
    return Result(status="ok", metric_name=task.metric, metric=metric,
                  best_metric=max(m for _, m in curve) if curve else metric,
                  loss=_mean([r.loss for r in every]), curve=curve, params=max(r.params or 0 for r in every),
                  flops_per_token=max(r.flops_per_token or 0 for r in every), wall_time_s=time.perf_counter() - started,
                  train_time_s=train_time, tokens_per_s=_mean([r.tokens_per_s or 0.0 for r in every]),
                  peak_mem_bytes=max(r.peak_mem_bytes or 0 for r in every), device=last.device, host=last.host)
