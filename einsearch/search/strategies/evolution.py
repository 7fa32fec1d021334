"""Regularized (aging) evolution (Real et al. 2019; as in einspace): a population of the P most
recent successful candidates; a parent is the best of S drawn at random; its child is one mutation
(a typed subtree resampled, one hyperparameter changed, or the depth changed by one repeat or stage)
or, optionally, a crossover with the runner-up; the oldest member dies when a new one joins.
Children are valid by construction.

With `objectives` (e.g. ('metric', 'state', 'params'); `--objectives`), selection is by Pareto rank:
the contenders are ordered by their non-dominated front within the population, then by crowding
distance (NSGA-II's order), so the population spreads along the accuracy/cost front.
`metric_floor` (e.g. `evolution:metric_floor=0.5`, in the metric's units and direction, or `auto` from the
task's plateau where it has one, as MQAR does) keeps members that miss it from breeding where others reach
it. With objectives they are infeasible (Deb's constrained domination): they rank after every member that
reaches it, the least short first, so a model that learns nothing cannot hold the cheap end of the front by
its zero state, and a floor of "solved" (e.g. 0.9) that no baseline reaches still lets the search climb from
the closest. With one objective, parents are drawn only among the members that reach it, and while none
does, children are fresh samples: a population whose members all sit on a task's plateau (MQAR's guess among
the values in context) holds only noise to select on.
"""
from __future__ import annotations

import random
from collections import deque
from typing import Sequence

from einsearch.errors import UsageError
from einsearch.grammar import Arch, mutate
from einsearch.search.base import Strategy
from einsearch.search.objectives import check_objectives, objective_vector
from einsearch.search.pareto import pareto_order
from einsearch.search.registry import register_strategy
from einsearch.search.types import Candidate, Result


@register_strategy("evolution")
class Evolution(Strategy):
    name = "evolution"

    def __init__(self, *args, population: int = 20, sample_size: int | None = None, crossover: float = 0.0,
                 objectives: Sequence[str] | None = None, metric_floor: float | str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.objectives = check_objectives(objectives) if objectives else None
        self.metric_floor = self.floor_from(metric_floor, "members that learned nothing will still breed")
        sample_size = min(5, population) if sample_size is None else sample_size
        if population < 2 or not 1 <= sample_size <= population:
            raise UsageError(f"evolution needs population >= 2 and 1 <= sample_size <= population, "
                             f"got population={population}, sample_size={sample_size}")
        if not 0.0 <= crossover <= 1.0:
            raise UsageError(f"crossover probability must be in [0, 1], got {crossover}")
        self.population_size, self.sample_size, self.crossover_rate = population, sample_size, crossover
        # Oldest first: (arch, score), or (arch, objectives to maximise) with `objectives`.
        self.population: deque[tuple[Arch, float | tuple[float, ...]]] = deque(maxlen=population)

    def _propose(self, rng: random.Random) -> Candidate:
        # The first P candidates (baselines included) are the random initial population.
        members = list(self.population)
        violations = self._violations(members)
        on_plateau = bool(violations) and not self.objectives and min(violations) > 0
        if self.n_asked < self.population_size or not members or on_plateau:
            return self._emit(self.fresh(Arch(self.sampler.net(rng)), rng), (), "sample")
        if self.objectives:
            order = pareto_order([values for _, values in members], violations)
            picked = sorted(rng.sample(range(len(members)), min(self.sample_size, len(members))),
                            key=lambda i: (order[i], i))
            contenders = [members[i] for i in picked]
        else:
            if violations:
                members = [member for member, short in zip(members, violations) if short == 0]
            contenders = rng.sample(members, min(self.sample_size, len(members)))
            contenders.sort(key=lambda member: member[1], reverse=True)
        parent = contenders[0][0]
        if len(contenders) > 1 and rng.random() < self.crossover_rate:
            other = contenders[1][0]
            child = mutate.crossover(parent, other, self.task, rng, self.limits)
            if child is not None and child.hash not in self.seen:
                return self._emit(child, (parent.hash, other.hash), "crossover")
        child, op, draw = None, "resample", rng.random()
        if draw < 0.4:
            child, op = mutate.change_hparam(parent, self.task, rng, self.limits), "hparam"
        elif draw < 0.6:
            child, op = mutate.change_depth(parent, self.task, rng, self.limits), "depth"
        if child is None:
            child, op = mutate.resample(parent, self.task, rng, self.limits), "resample"
        return self._emit(self.fresh(child, rng), (parent.hash,), op)

    def _violations(self, members: list) -> list[float] | None:
        """Per member, how far its metric falls short of `metric_floor` (0: feasible)."""
        if self.metric_floor is None:
            return None
        floor = self.floor_as_score(self.metric_floor)
        at = self.objectives.index("metric") if self.objectives else None
        return [max(0.0, floor - (values if at is None else values[at])) for _, values in members]

    def _observe(self, candidate: Candidate, result: Result) -> None:
        score = self.score(result)
        if score is None:
            return
        if self.objectives:  # a full deque drops the oldest
            self.population.append((candidate.arch, objective_vector(candidate.arch, result.metric, self.task,
                                                                     self.objectives)))
        else:
            self.population.append((candidate.arch, score))
