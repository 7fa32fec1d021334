"""Optuna samplers over the grammar, define-by-run.

Each draw the constrained PCFG sampler makes becomes `trial.suggest_float(name, 0, 1)`, named by its
structural position in the derivation (e.g. `stage1/block0/layer0/c0`: first draw of the layer in
the first block of the second stage), and the draw u picks the option by inverse CDF of the PCFG
weights over the options that still fit. Why floats and not categoricals: the feasible options at a
position change with the budget left and the choices above it, and Optuna refuses a categorical
whose choices change between trials; a categorical's prior would also ignore the grammar's weights.
With u uniform the prior is exactly the PCFG, and TPE learns which regions of each position's u pay.

GP, CMA-ES and QMC model only the positions every trial shares (their intersection search space);
draws elsewhere fall back to independent random sampling, i.e. the PCFG prior. `warning` says so.
"""
from __future__ import annotations

import logging
import random
from typing import Any, Iterable, Sequence

import optuna
from optuna.trial import TrialState

from einsearch.errors import UsageError
from einsearch.grammar import Arch, Sampler
from einsearch.search.base import Strategy
from einsearch.search.objectives import check_objectives, costs
from einsearch.search.registry import register_strategy
from einsearch.search.types import Candidate, Result
from einsearch.tasks import Task

log = logging.getLogger(__name__)

MAX_DUPLICATE_TRIALS = 8  # trials re-asked when Optuna proposes an architecture already seen
SAMPLERS = ("tpe", "gp", "cmaes", "qmc", "random-optuna", "nsga2")  # the strategy names this file serves
OBJECTIVES = ("params", "state", "flops")  # nsga2's second objective (minimised) when `objectives` is not given


class _PositionSampler(Sampler):
    """Tracks the derivation path so every draw can be named by its position."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._stack: list[tuple[str, dict[str, int]]] = []

    def draw_name(self) -> str:
        counts = self._stack[-1][1]
        n = counts.get("#", 0)
        counts["#"] = n + 1
        return "/".join(label for label, _ in self._stack[1:]) + f"/c{n}"

    def _enter(self, kind: str, method, *args, **kwargs):
        counts = self._stack[-1][1]
        index = counts.get(kind, 0)
        counts[kind] = index + 1
        self._stack.append((f"{kind}{index}", {}))
        try:
            return method(*args, **kwargs)
        finally:
            self._stack.pop()

    def net(self, rng):
        self._stack = [("net", {})]
        return super().net(rng)

    def stage(self, *args, **kwargs):
        return self._enter("stage", super().stage, *args, **kwargs)

    def block(self, *args, **kwargs):
        return self._enter("block", super().block, *args, **kwargs)

    def layer(self, *args, **kwargs):
        return self._enter("layer", super().layer, *args, **kwargs)

    def mod(self, *args, **kwargs):
        return self._enter("mod", super().mod, *args, **kwargs)


class _TrialRng(random.Random):
    """The sampler's source of randomness, answered by an Optuna trial: one float per draw."""

    def __init__(self, trial: optuna.Trial, sampler: _PositionSampler):
        super().__init__(0)
        self.trial, self.sampler = trial, sampler

    def random(self) -> float:
        return min(self.trial.suggest_float(self.sampler.draw_name(), 0.0, 1.0), 1.0 - 1e-12)

    def choice(self, seq):  # uniform choice by inverse CDF, so nearby u pick the same item
        return seq[min(int(self.random() * len(seq)), len(seq) - 1)]


def make_sampler(name: str, seed: int, population: int = 20) -> optuna.samplers.BaseSampler:
    """An Optuna sampler by its einsearch strategy name (`population`: nsga2's generation size)."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random-optuna":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise UsageError("strategy 'cmaes' needs the `cmaes` package (pip install cmaes)") from None
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    raise UsageError(f"unknown Optuna sampler {name!r}")


@register_strategy(*SAMPLERS)
class OptunaSearch(Strategy):
    """Any Optuna sampler over the grammar; `nsga2` optimises the metric and costs: `objectives`
    (e.g. ('metric', 'state', 'params'), from `--objectives`), else (metric, `objective`).

    nsga2's `population` is evolution's default, 20, not Optuna's 50: a search of a few dozen
    evaluations would otherwise never get past its first, random generation."""

    def __init__(self, *args, sampler: str = "tpe", storage: str | None = None,
                 study_name: str | None = None, objective: str = "params", objectives: Sequence[str] | None = None,
                 population: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.name = sampler
        self.multi = sampler == "nsga2"
        if self.multi and objective not in OBJECTIVES:
            raise UsageError(f"nsga2's second objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        if objectives and not self.multi:
            raise UsageError(f"objectives: strategy {sampler!r} optimises one objective; use nsga2 or evolution")
        if population is not None and not self.multi:
            raise UsageError(f"population: strategy {sampler!r} has no population; nsga2 and evolution do")
        population = 20 if population is None else population
        if isinstance(population, bool) or not isinstance(population, int) or population < 2:
            raise UsageError(f"nsga2 needs population >= 2 (an integer), got population={population!r}")
        self.objective = objective
        self.objectives = check_objectives(objectives) if objectives else ("metric", objective)
        direction = "maximize" if self.task.higher_is_better else "minimize"
        directions = ([direction if name == "metric" else "minimize" for name in self.objectives] if self.multi
                      else [direction])
        self.study = optuna.create_study(
            storage=storage, study_name=study_name, load_if_exists=storage is not None,
            sampler=make_sampler(sampler, self.seed, population), directions=directions)
        self.position_sampler = _PositionSampler(self.task, self.limits)
        self._open: dict[str, int] = {}  # arch hash -> number of its running trial
        self._known: dict[str, float | tuple | None] = {}  # arch hash -> values told (None: failed)
        self._recorded: set[str] = set()  # arch hashes already in the study
        if sampler in ("gp", "cmaes", "qmc"):
            self.warning = (f"Optuna's {sampler} sampler models only the derivation positions that every "
                            f"trial shares; other draws fall back to random PCFG sampling")
            log.warning(self.warning)

    @classmethod
    def create(cls, name: str, task: Task, *, storage: str | None = None, study_name: str | None = None,
               **kwargs: Any) -> "OptunaSearch":
        return cls(task, sampler=name, storage=storage, study_name=study_name, **kwargs)

    def _propose(self, rng: random.Random) -> Candidate:
        arch = None
        for _ in range(MAX_DUPLICATE_TRIALS):
            trial = self.study.ask()
            arch = Arch(self.position_sampler.net(_TrialRng(trial, self.position_sampler)))
            if arch.hash not in self.seen:
                trial.set_user_attr("arch_hash", arch.hash)
                trial.set_user_attr("arch", str(arch))
                self._open[arch.hash] = trial.number
                self._recorded.add(arch.hash)
                return self._emit(arch, (), "sample")
            # A duplicate costs no training: teach the sampler the known value, or mark it failed.
            values = self._known.get(arch.hash)
            if values is None:
                self.study.tell(trial, state=TrialState.FAIL)
            else:
                self.study.tell(trial, values)
        return self._emit(self.fresh(arch, rng), (), "sample")  # no trial: told as a plain record

    def values(self, candidate: Candidate, result: Result) -> float | tuple | None:
        if self.score(result) is None:
            return None
        if not self.multi:
            return result.metric
        values = {"metric": result.metric, **costs(candidate.arch, self.task)}
        return tuple(values[name] for name in self.objectives)

    def _observe(self, candidate: Candidate, result: Result) -> None:
        key = candidate.arch.hash
        values = self.values(candidate, result)
        self._known[key] = values
        number = self._open.pop(key, None)
        if number is not None:
            if values is None:
                self.study.tell(number, state=TrialState.FAIL)
            else:
                self.study.tell(number, values)
        elif key not in self._recorded and values is not None:
            # Baselines and fallbacks have no parameters: recorded so the dashboard lists them.
            self.study.add_trial(optuna.trial.create_trial(
                values=list(values) if self.multi else [values],
                user_attrs={"arch_hash": key, "arch": str(candidate.arch), "op": candidate.op}))
        self._recorded.add(key)

    def replay(self, asked: Iterable[Candidate], told: Iterable[tuple[Candidate, Result]]) -> None:
        # A study in the database already holds its finished trials; running ones are re-opened.
        for trial in self.study.get_trials(deepcopy=False):
            key = trial.user_attrs.get("arch_hash")
            if key is None:
                continue
            self._recorded.add(key)
            if trial.state == TrialState.RUNNING:
                self._open[key] = trial.number
        super().replay(asked, told)
