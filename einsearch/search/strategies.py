"""Strategies by name: 'random', 'evolution:population=20,sample_size=5,crossover=0.2', 'tpe', ...

Options after ':' are the strategy's keyword arguments (numbers or words), e.g. 'nsga2:objective=state'.
"""
from __future__ import annotations

from typing import Any, Sequence

from einsearch.evaluators.task import Task
from einsearch.grammar import Arch, Limits
from einsearch.search.asha import Asha, parse_fidelity
from einsearch.search.base import RandomSearch, Strategy
from einsearch.search.evolution import Evolution
from einsearch.search.optuna_search import OptunaSearch
from einsearch.search.pcfg_learn import PcfgLearn

OPTUNA_SAMPLERS = ("tpe", "gp", "cmaes", "qmc", "random-optuna", "nsga2")
STRATEGIES = ("random", "evolution", "pcfg-learn") + OPTUNA_SAMPLERS


def _value(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_strategy(spec: str) -> tuple[str, dict[str, Any]]:
    name, _, rest = spec.partition(":")
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    options: dict[str, Any] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise ValueError(f"strategy {spec!r}: option {part!r} is not key=value")
        options[key.strip()] = _value(value.strip())
    return name, options


def make_strategy(spec: str, task: Task | str, *, steps: int, seed: int = 0, limits: Limits = Limits(),
                  initial: Sequence[Arch] = (), train_seed: int = 0, storage: str | None = None,
                  study_name: str | None = None, fidelity: str | None = None,
                  extra: dict[str, Any] | None = None) -> Strategy | Asha:
    """The strategy named by `spec`, wrapped in ASHA when `fidelity` is 'asha:min,max,eta'
    (then `steps` is ignored: the rungs set the steps). `extra`: more keyword arguments for the strategy."""
    name, options = parse_strategy(spec)
    options.update(extra or {})
    common = dict(steps=steps, seed=seed, limits=limits, initial=initial, train_seed=train_seed)
    try:
        if name == "random":
            strategy: Strategy = RandomSearch(task, **common, **options)
        elif name == "evolution":
            strategy = Evolution(task, **common, **options)
        elif name == "pcfg-learn":
            strategy = PcfgLearn(task, **common, **options)
        else:
            strategy = OptunaSearch(task, **common, sampler=name, storage=storage, study_name=study_name, **options)
    except TypeError as err:  # an option the strategy does not take
        raise ValueError(f"strategy {spec!r}: {err}") from None
    if fidelity:
        low, high, eta = parse_fidelity(fidelity)
        return Asha(strategy, low, high, eta)
    return strategy
