"""The strategy interface: ask for a candidate, tell its result. A strategy never trains, stores or
prints; its whole state can be rebuilt by replaying past (candidate, result) pairs.

Every draw is seeded from (search seed, strategy name, number of candidates asked so far), so the
same told results in the same order give the same next candidate, in one process or after resume.
"""
from __future__ import annotations

import logging
import random
from typing import Any, Iterable, Iterator, Sequence

from einsearch.errors import EinsearchError, UsageError
from einsearch.grammar import Arch, Limits, Sampler, mutate
from einsearch.search.types import Candidate, Result, succeeded
from einsearch.tasks import Task

log = logging.getLogger(__name__)

MAX_ALTERNATIVES = 64  # mutations of a duplicate tried before fresh samples
MAX_FRESH = 64  # fresh samples tried before the search space is declared exhausted


class SearchExhausted(EinsearchError, RuntimeError):
    """No architecture not yet seen could be found within the bounded list of alternatives."""


class Strategy:
    """Base class: subclasses implement `_propose(rng)` and optionally `_observe(candidate, result)`."""

    name = "strategy"

    def __init__(self, task: Task, *, steps: int, seed: int = 0, limits: Limits = Limits(),
                 initial: Sequence[Arch] = (), train_seed: int = 0):
        if steps < 1:
            raise UsageError(f"steps must be >= 1, got {steps}")
        self.task = task
        self.steps, self.seed, self.limits, self.train_seed = steps, seed, limits, train_seed
        self.sampler = Sampler(self.task, limits)
        self.seen: set[str] = set()  # hashes of every architecture emitted
        self.n_asked = 0
        self.initial = list(initial)  # seeded baselines, emitted first
        self.history: list[tuple[Candidate, Result]] = []  # told pairs, in order
        self.warning: str | None = None  # a degradation the user should hear about

    @classmethod
    def create(cls, name: str, task: Task, *, storage: str | None = None, study_name: str | None = None,
               **kwargs: Any) -> "Strategy":
        """The strategy registered as `name` (see `einsearch.search.registry`). `storage` and `study_name`
        name a persistent study, for strategies that keep one (Optuna's); others ignore them."""
        return cls(task, **kwargs)

    # ---- the interface ----------------------------------------------------------------------------
    def ask(self) -> Candidate:
        rng = self.rng()
        candidate = None
        while self.initial and candidate is None:
            arch = self.initial.pop(0)
            if arch.hash not in self.seen:
                candidate = self._emit(arch, (), "baseline")
        if candidate is None:
            candidate = self._propose(rng)
        return candidate

    def tell(self, candidate: Candidate, result: Result) -> None:
        self.history.append((candidate, result))
        self._observe(candidate, result)

    def replay(self, asked: Iterable[Candidate], told: Iterable[tuple[Candidate, Result]]) -> None:
        """Rebuild the state after a restart: `asked` is every candidate emitted before (in order,
        pending ones included), `told` the finished (candidate, result) pairs in completion order."""
        for candidate in asked:
            self._mark(candidate)
        for candidate, result in told:
            self.tell(candidate, result)

    # ---- for subclasses ---------------------------------------------------------------------------
    def _propose(self, rng: random.Random) -> Candidate:
        raise NotImplementedError

    def _observe(self, candidate: Candidate, result: Result) -> None:
        pass

    def rng(self, tag: str = "") -> random.Random:
        return random.Random(f"{self.seed}:{self.name}:{tag}:{self.n_asked}")

    def score(self, result: Result) -> float | None:
        """The result's metric as a number where larger is better; None for a failure."""
        if not succeeded(result):
            return None
        return result.metric if self.task.higher_is_better else -result.metric

    def floor_from(self, metric_floor: float | str | None, consequence: str) -> float | None:
        """A `metric_floor` option in the metric's units. 'auto': a third of the way from the task's plateau
        to a perfect score (MQAR with 4 pairs: 0.5, with 16: 0.375), so it sits clear of the plateau's noise.
        A floor at or below the plateau sets `warning`, which says the `consequence`."""
        plateau = self.task.plateau if self.task.higher_is_better else None  # a level on a 0-1 score
        if metric_floor == "auto":
            if plateau is None:
                raise UsageError(f"{self.name}: metric_floor=auto needs a task with a plateau, and {self.task.spec} "
                                 f"has none: give the floor as a number")
            return plateau + (1.0 - plateau) / 3
        if metric_floor is None:
            return None
        if isinstance(metric_floor, bool) or not isinstance(metric_floor, (int, float)):
            raise UsageError(f"{self.name}: metric_floor must be a number or auto, got {metric_floor!r}")
        if plateau is not None and metric_floor <= plateau:
            self.warning = (f"metric_floor {metric_floor:g} is not above {self.task.spec}'s plateau "
                            f"({plateau:.3g}): {consequence}")
            log.warning(self.warning)
        return float(metric_floor)

    def floor_as_score(self, floor: float) -> float:
        """A floor in the metric's units on the scale of `score` (larger is better)."""
        return floor if self.task.higher_is_better else -floor

    def _mark(self, candidate: Candidate) -> None:
        self.seen.add(candidate.arch.hash)
        self.initial = [a for a in self.initial if a.hash != candidate.arch.hash]
        self.n_asked += 1

    def _emit(self, arch: Arch, parents: tuple[str, ...], op: str) -> Candidate:
        candidate = Candidate(arch=arch, task=self.task.spec, steps=self.steps, seed=self.train_seed,
                              parents=parents, op=op)
        self._mark(candidate)
        return candidate

    def fresh(self, arch: Arch, rng: random.Random) -> Arch:
        """`arch` if not seen yet, else the first unseen one of a fixed, finite list of alternatives:
        mutations of it (seeded by its hash), then fresh samples. No unbounded retry loop."""
        if arch.hash not in self.seen:
            return arch
        for alternative in self._alternatives(arch):
            if alternative.hash not in self.seen:
                return alternative
        raise SearchExhausted(f"no unseen architecture among {MAX_ALTERNATIVES + MAX_FRESH} "
                              f"alternatives of a duplicate; the search space looks exhausted")

    def _alternatives(self, arch: Arch) -> Iterator[Arch]:
        for i in range(MAX_ALTERNATIVES):
            r = random.Random(f"{arch.hash}:{i}")
            if i % 2:
                child = mutate.change_hparam(arch, self.task, r, self.limits)
                if child is not None:
                    yield child
            else:
                yield mutate.resample(arch, self.task, r, self.limits)
        for i in range(MAX_FRESH):
            yield Arch(self.sampler.net(random.Random(f"{self.seed}:fresh:{self.n_asked}:{i}")))
