"""Measured fidelity: does the ranking after a few training steps predict the ranking after many?

`measure_fidelity` trains the same candidates (the seeded baselines, then architectures sampled with
the search seed) at each step budget, through the search loop (same executor path as a search, Ray
or local; every run stored and cached, so re-running the same measurement resumes it), then stores
Spearman's rank correlation between the results at each pair of budgets.

Multi-fidelity searches read it back: `asha.fidelity_warning` says when the correlation between
ASHA's lowest and highest rungs is under `asha.MIN_CORRELATION`, or has not been measured.
"""
from __future__ import annotations

import hashlib
import logging
import math
import random
from dataclasses import asdict, replace
from itertools import combinations
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from einsearch.errors import UsageError
from einsearch.evaluators.executor import Executor
from einsearch.grammar import Arch, Limits, Sampler
from einsearch.search.base import SearchExhausted
from einsearch.search.loop import Progress, SearchLoop
from einsearch.search.run import SearchConfig, drive, loop_leases, make_executor, seeds
from einsearch.search.store import Store
from einsearch.search.types import Candidate, Result, succeeded
from einsearch.tasks import Task, get_task

if TYPE_CHECKING:
    from einsearch.storage.records import FidelityRecord

log = logging.getLogger(__name__)

MIN_PAIRS = 3  # candidates with results at both budgets needed for a correlation


def parse_budgets(text: str) -> tuple[int, ...]:
    """'100,300,1000' -> (100, 300, 1000): at least two distinct positive step counts, sorted."""
    try:
        budgets = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UsageError(f"budgets: {text!r} is not a list of step counts like 100,300,1000") from None
    if len(budgets) < 2 or budgets[0] < 1:
        raise UsageError(f"budgets: give at least two distinct positive step counts, e.g. 100,300,1000; got {text!r}")
    return tuple(budgets)


def ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson's on the ranks, ties averaged); None when undefined
    (fewer than two points, or one side constant)."""
    if len(xs) != len(ys):
        raise ValueError(f"spearman: {len(xs)} and {len(ys)} values")
    if len(xs) < 2:
        return None
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx, vy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return None
    return max(-1.0, min(1.0, cov / math.sqrt(vx * vy)))


def correlations(scores: dict[int, dict[str, float]]) -> list[tuple[int, int, float | None, int]]:
    """(low, high, rho, n) for each pair of budgets: `scores` maps steps -> arch hash -> score
    (larger is better); rho over the architectures scored at both, None if undefined or n < MIN_PAIRS."""
    out = []
    for low, high in combinations(sorted(scores), 2):
        common = sorted(set(scores[low]) & set(scores[high]))
        rho = spearman([scores[low][h] for h in common], [scores[high][h] for h in common])
        out.append((low, high, rho if len(common) >= MIN_PAIRS else None, len(common)))
    return out


class FixedCandidates:
    """The ask/tell interface over a fixed list of candidates (no learning): what a fidelity run trains."""

    name = "fidelity"
    warning: str | None = None

    def __init__(self, task: Task, candidates: Iterable[Candidate]):
        self.task = task
        self.pending = list(candidates)

    def ask(self) -> Candidate:
        if not self.pending:
            raise SearchExhausted("every fidelity candidate has been trained")
        return self.pending.pop(0)

    def tell(self, candidate: Candidate, result: Result) -> None:
        pass

    def replay(self, asked: Iterable[Candidate], told: Iterable[tuple[Candidate, Result]]) -> None:
        done = {c.key for c in asked}
        self.pending = [c for c in self.pending if c.key not in done]

    def score(self, result: Result) -> float | None:
        if not succeeded(result):
            return None
        return result.metric if self.task.higher_is_better else -result.metric


def fidelity_archs(config: SearchConfig, task: Task, n: int) -> list[Arch]:
    """The baselines named by `config.seed_with`, then distinct architectures sampled with `config.seed`
    within `config.max_params`: `n` in all."""
    archs: list[Arch] = []
    for arch in seeds(config, task):
        if arch.hash not in {a.hash for a in archs}:
            archs.append(arch)
    archs = archs[:n]
    sampler = Sampler(task, Limits(max_params=config.max_params))
    attempt = 0
    while len(archs) < n:
        if attempt >= 50 * n:
            raise UsageError(f"fidelity: found only {len(archs)} distinct architectures for {task.spec} "
                             f"within the limits; lower --n")
        arch = Arch(sampler.net(random.Random(f"{config.seed}:fidelity:{attempt}")))
        attempt += 1
        if arch.hash not in {a.hash for a in archs}:
            archs.append(arch)
    return archs


def default_name(config: SearchConfig, budgets: Sequence[int], n: int) -> str:
    """A name fixed by what is measured, so running the same measurement again resumes it."""
    what = repr((config.task, tuple(budgets), n, config.seed, config.seed_with, config.train_seed, config.max_params))
    return f"fidelity-{config.task.partition(':')[0]}-{hashlib.sha256(what.encode()).hexdigest()[:10]}"


def measure_fidelity(config: SearchConfig, budgets: Sequence[int], n: int, store: Store, *,
                     on_progress: Callable[[Progress], None] | None = None,
                     executor: Executor | None = None) -> list[FidelityRecord]:
    """Train `n` candidates at every budget (config's executor, workers, seeds and limits; or `executor`)
    and store the rank correlation between each pair of budgets; returns the stored records. A run of
    the same name that was interrupted is resumed: only what is missing is trained."""
    if n < MIN_PAIRS:
        raise UsageError(f"fidelity: --n must be at least {MIN_PAIRS}, got {n}")
    budgets = tuple(sorted(set(budgets)))
    task = get_task(config.task)
    name = config.name or default_name(replace(config, task=task.spec), budgets, n)
    config = replace(config, task=task.spec, name=name, strategy="fidelity", budget=n * len(budgets),
                     steps=budgets[-1], keep_weights=0, fidelity=None)
    archs = fidelity_archs(config, task, n)
    candidates = [Candidate(arch=arch, task=task.spec, steps=steps, seed=config.train_seed, op="fidelity")
                  for steps in budgets for arch in archs]
    existing = store.find_search(name)
    if existing is not None and (existing.task != task.spec or existing.strategy != "fidelity"):
        raise UsageError(f"fidelity: a search named {name!r} already exists and is not this measurement")
    strategy = FixedCandidates(task, candidates)
    executor = executor or make_executor(config)
    if existing is None:
        store.create_search(name, task=task.spec, strategy="fidelity",
                            config={**asdict(config), "budgets": list(budgets), "n": n},
                            seed=config.seed, budget=config.budget)
    loop = SearchLoop(strategy, executor, store, task=task, search=name, budget=config.budget,
                      workers=config.workers, time_limit_s=config.time_limit_s, on_progress=on_progress,
                      leases=loop_leases(store, name))
    drive(loop, store, name, executor, resume=existing is not None)
    return record_correlations(store, name, task, budgets, {a.hash for a in archs})


def record_correlations(store: Store, name: str, task: Task, budgets: Sequence[int],
                        archs: set[str]) -> list[FidelityRecord]:
    """Rank the search `name`'s successful runs at each budget and store each pair's correlation."""
    sign = 1.0 if task.higher_is_better else -1.0
    scores: dict[int, dict[str, float]] = {steps: {} for steps in budgets}
    for record in store.evaluations(name):
        if record.status == "ok" and record.metric is not None and record.steps in scores and record.arch_hash in archs:
            scores[record.steps][record.arch_hash] = sign * record.metric
    stored = []
    for low, high, rho, count in correlations(scores):
        if rho is None:
            log.warning("fidelity %d -> %d steps on %s: no correlation (%d candidates with results at both, "
                        "or every score equal)", low, high, task.spec, count)
            continue
        stored.append(store.record_fidelity(task.spec, low, high, rho, count, search=name))
    return stored
