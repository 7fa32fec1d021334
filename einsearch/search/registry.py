"""Strategies by name: 'random', 'evolution:population=20,sample_size=5,crossover=0.2', 'tpe', ...

A strategy is one file in `einsearch/search/strategies/` with one decorator:

    @register_strategy("my-strategy")
    class MyStrategy(Strategy): ...

Options after ':' are the strategy's keyword arguments (numbers or words), e.g. 'nsga2:objective=state'.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from einsearch.errors import UsageError
from einsearch.grammar import Arch, Limits
from einsearch.plugins import import_submodules
from einsearch.search.asha import Asha, parse_fidelity
from einsearch.search.base import Strategy
from einsearch.tasks import Task

_STRATEGIES: dict[str, type[Strategy]] = {}
_LOADED = False


def register_strategy(*names: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator: the strategy under each of `names` (one class may serve several, e.g. every
    Optuna sampler); `create` receives the name it was asked by."""

    def wrap(cls: type[Strategy]) -> type[Strategy]:
        for name in names:
            if name in _STRATEGIES and _STRATEGIES[name] is not cls:
                raise ValueError(f"strategy {name!r} is registered twice")
            _STRATEGIES[name] = cls
        return cls

    return wrap


def strategy_names() -> tuple[str, ...]:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        import_submodules("einsearch.search.strategies")
    return tuple(_STRATEGIES)


def _value(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_strategy(spec: str) -> tuple[str, dict[str, Any]]:
    name, _, rest = spec.partition(":")
    if name not in strategy_names():
        raise UsageError(f"unknown strategy {name!r}; choose one of {', '.join(strategy_names())}")
    options: dict[str, Any] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise UsageError(f"strategy {spec!r}: option {part!r} is not key=value")
        options[key.strip()] = _value(value.strip())
    return name, options


def make_strategy(spec: str, task: Task, *, steps: int, seed: int = 0, limits: Limits = Limits(),
                  initial: Sequence[Arch] = (), train_seed: int = 0, storage: str | None = None,
                  study_name: str | None = None, fidelity: str | None = None,
                  extra: dict[str, Any] | None = None) -> Strategy | Asha:
    """The strategy named by `spec`, wrapped in ASHA when `fidelity` is 'asha:min,max,eta'
    (then `steps` is ignored: the rungs set the steps). `extra`: more keyword arguments for the strategy."""
    name, options = parse_strategy(spec)
    options.update(extra or {})
    try:
        strategy = _STRATEGIES[name].create(name, task, steps=steps, seed=seed, limits=limits, initial=initial,
                                            train_seed=train_seed, storage=storage, study_name=study_name,
                                            **options)
    except TypeError as err:  # an option the strategy does not take
        raise UsageError(f"strategy {spec!r}: {err}") from None
    if fidelity:
        low, high, eta = parse_fidelity(fidelity)
        return Asha(strategy, low, high, eta)
    return strategy
