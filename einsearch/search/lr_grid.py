"""Learning-rate robustness, as MAD does it: every architecture is trained at each rate of a grid and
scored by its best run.

`LrGrid` wraps a strategy (or ASHA) with the same ask/tell/replay interface. Asked for a candidate,
it asks the strategy once and hands the loop one candidate per rate (`Candidate.lr`); the loop
trains, stores and caches each as its own evaluation (the cache key includes the rate). When every
rate of an architecture is in, the strategy is told once: the best run, with its rate. So a
strategy sees one combined result per architecture and never knows there was a grid.

Resume: `replay` groups the stored runs by architecture (and steps and seed); an architecture whose
rates were not all started gets only the missing ones queued (interrupted ones the loop re-runs).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Sequence

from einsearch.errors import UsageError
from einsearch.search.types import Candidate, Result

GroupKey = tuple[str, str, int, int]  # arch hash, task, steps, seed: one architecture's grid


def parse_lr_grid(text: str | Sequence[float] | None) -> tuple[float, ...]:
    """'1e-3,3e-3,1e-2' (or a list of numbers, as in a TOML file) -> (0.001, 0.003, 0.01); () for none."""
    if text is None:
        return ()
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    rates: list[float] = []
    for part in parts:
        try:
            rate = float(part)
        except (TypeError, ValueError):
            raise UsageError(f"lr-grid: {part!r} is not a number (expected rates like 1e-3,3e-3,1e-2)") from None
        if not (math.isfinite(rate) and 0 < rate < 10):
            raise UsageError(f"lr-grid: a learning rate must be positive and below 10, got {part!r}")
        if rate in rates:
            raise UsageError(f"lr-grid: {part!r} is given twice")
        rates.append(rate)
    if not rates:
        raise UsageError("lr-grid: give at least one rate, e.g. 1e-3,3e-3,1e-2")
    return tuple(rates)


def format_lr_grid(rates: Sequence[float]) -> str:
    """The canonical text of a grid, as stored in a search's configuration."""
    return ",".join(f"{rate:g}" for rate in rates)


def group_key(candidate: Candidate) -> GroupKey:
    return (candidate.arch.hash, candidate.task, candidate.steps, candidate.seed)


def best_run(runs: dict[float, Result], rates: Sequence[float], score: Any) -> tuple[float, Result]:
    """The rate and result of the best-scoring run (the earlier rate of the grid on a tie); if every
    run failed, the first rate's failure."""
    scored = [(score(runs[rate]), -i, rate) for i, rate in enumerate(rates) if rate in runs]
    ok = [entry for entry in scored if entry[0] is not None]
    if ok:
        _, _, rate = max(ok)
        return rate, runs[rate]
    rate = next(rate for rate in rates if rate in runs)
    return rate, runs[rate]


class LrGrid:
    """Wraps a strategy: one candidate per rate out, one combined result per architecture in."""

    def __init__(self, inner: Any, rates: Sequence[float]):
        if not rates:
            raise UsageError("lr-grid: give at least one rate")
        self.inner, self.rates = inner, tuple(float(r) for r in rates)
        self.name = inner.name
        self.queue: list[Candidate] = []  # runs asked of the strategy but not yet handed to the loop
        self.bases: dict[GroupKey, Candidate] = {}  # the candidate the strategy asked (lr None)
        self.runs: dict[GroupKey, dict[float, Result]] = {}  # finished runs by rate
        self.done: set[GroupKey] = set()  # architectures the strategy has been told about

    @property
    def warning(self) -> str | None:
        return self.inner.warning

    def score(self, result: Result) -> float | None:
        return self.inner.score(result)

    def ask(self) -> Candidate:
        if not self.queue:
            base = dataclasses.replace(self.inner.ask(), lr=None)
            self.bases[group_key(base)] = base
            self.queue = [dataclasses.replace(base, lr=rate) for rate in self.rates]
        return self.queue.pop(0)

    def tell(self, candidate: Candidate, result: Result) -> None:
        combined = self._collect(candidate, result)
        if combined is not None:
            self.inner.tell(*combined)

    def _collect(self, candidate: Candidate, result: Result) -> tuple[Candidate, Result] | None:
        """Record one run; the combined (candidate at its best rate, result) once the grid is complete."""
        if candidate.lr not in self.rates:
            return None  # not a run of this grid (e.g. stored by an earlier configuration)
        key = group_key(candidate)
        runs = self.runs.setdefault(key, {})
        runs[candidate.lr] = result
        if key in self.done or len(runs) < len(self.rates):
            return None
        self.done.add(key)
        rate, best = best_run(runs, self.rates, self.inner.score)
        base = self.bases.get(key) or dataclasses.replace(candidate, lr=None)
        return dataclasses.replace(base, lr=rate), best

    def replay(self, asked: Iterable[Candidate], told: Iterable[tuple[Candidate, Result]]) -> None:
        """Rebuild after a restart from the stored runs; queue the rates never started."""
        started: dict[GroupKey, set[float | None]] = {}
        bases: list[Candidate] = []
        for candidate in asked:
            key = group_key(candidate)
            if key not in started:
                started[key] = set()
                base = dataclasses.replace(candidate, lr=None)
                self.bases[key] = base
                bases.append(base)
            started[key].add(candidate.lr)
        combined = [pair for pair in (self._collect(c, r) for c, r in told) if pair is not None]
        self.inner.replay(bases, combined)
        self.queue = [dataclasses.replace(self.bases[key], lr=rate)
                      for key, rates in started.items() for rate in self.rates if rate not in rates]
