"""One search from its configuration: store, strategy, executor and loop wired together.
The CLI's `search` and `resume` call `run_search`; so can Python code."""
from __future__ import annotations

import logging
import types
import typing
from dataclasses import asdict, dataclass
from typing import Any, Callable, Union

from einsearch.errors import UsageError
from einsearch.evaluators import executor as evaluators
from einsearch.evaluators.executor import Executor
from einsearch.grammar import Arch, Limits
from einsearch.search.asha import Asha, fidelity_warning
from einsearch.search.leases import Leases, supports_leases
from einsearch.search.library import baselines, get_baseline
from einsearch.search.loop import INTERRUPTED, Progress, SearchLoop
from einsearch.search.lr_grid import LrGrid, format_lr_grid, parse_lr_grid
from einsearch.search.objectives import MULTI_OBJECTIVE_STRATEGIES, parse_objectives
from einsearch.search.strategies.pcfg_learn import read_weights
from einsearch.search.store import Store
from einsearch.search.registry import make_strategy, parse_strategy
from einsearch.tasks import Task, TaskError, get_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchConfig:
    name: str
    task: str
    strategy: str = "evolution"
    budget: int = 20
    steps: int | None = None  # training steps at full fidelity; default: the task's recipe
    fidelity: str | None = None
    max_params: int | None = None
    workers: int = 1
    executor: str = "ray"  # ray | local | fake | fake:DELAY_SECONDS (see einsearch.evaluators.executor)
    seed_with: str | None = None  # comma-separated baseline names, or 'all'
    seed: int = 0
    train_seed: int = 0
    time_limit_s: float | None = None  # the whole search: stop asking after this long
    weights: str | None = None  # pcfg-learn: a TOML of learned weights to start from
    # Per candidate (handed to the executor).
    candidate_time_limit_s: float | None = None
    device: str | None = None  # cpu, cuda, cuda:1; default: cuda when the worker has a GPU
    eval_every: int | None = None  # learning-curve interval in steps (multi-fidelity reads it)
    # Ray only.
    ray_address: str | None = None  # join this cluster ("auto" or HOST:PORT); default: start a local Ray
    num_cpus: float = 1  # per candidate; torch threads follow it
    num_gpus: float = 0  # per candidate; fractional packs several candidates on one GPU
    max_retries: int = 1  # re-runs of a candidate whose worker died
    keep_weights: int = 3  # trained weights saved (safetensors) for the search's best K candidates
    # Learning-rate robustness: each architecture trained at every rate (e.g. "1e-3,3e-3,1e-2") and scored by
    # its best run; the budget counts architectures (budget x rates training runs).
    lr_grid: str | None = None
    objectives: str | None = None  # multi-objective search (nsga2, evolution), e.g. "accuracy,state,params"
    # Seed robustness: each candidate trained on seeds train_seed, train_seed + 1, ... and scored by the mean
    # (one evaluation each; the per-seed values are stored beside it).
    train_seeds: int = 1


def _matches(value: Any, hint: Any) -> bool:
    """Whether an option value is of a config field's declared type (int never accepts a bool)."""
    if hint is Any:
        return True
    if typing.get_origin(hint) in (Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value) if args else True
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    names = [getattr(a, "__name__", str(a)) for a in typing.get_args(hint) if a is not type(None)]
    return " or ".join(names) if names else getattr(hint, "__name__", str(hint))


def validated_config(values: dict[str, Any], where: str = "") -> SearchConfig:
    """A SearchConfig from option values (a config file's, the command line's), each checked against the
    field's declared type and range; a bad one is a UsageError naming it (`where` prefixes the name)."""
    hints = typing.get_type_hints(SearchConfig)
    values = _grid_and_objectives(dict(values), where)
    for key, value in values.items():
        option = where + key.removesuffix("_s").replace("_", "-")
        if key not in hints:
            raise UsageError(f"{option}: not a search option")
        if not _matches(value, hints[key]):
            raise UsageError(f"{option}: expected {_type_name(hints[key])}, got {value!r}")
    for key in ("budget", "workers", "steps", "train_seeds"):
        if values.get(key) is not None and values[key] < 1:
            raise UsageError(f"{where}{key.replace('_', '-')}: must be >= 1")
    if values.get("keep_weights", 0) < 0:
        raise UsageError(f"{where}keep-weights: must be >= 0")
    name = values.get("name")
    if name is not None and (not name.strip() or not name.isprintable() or name != name.strip()):
        raise UsageError(f"{where}name: a search name must be printable, without surrounding spaces, and not "
                         f"empty; got {name!r}")
    missing = [f for f in ("name", "task") if f not in values]
    if missing:
        raise UsageError(f"{where}{missing[0]}: required")
    return SearchConfig(**values)


def _grid_and_objectives(values: dict[str, Any], where: str) -> dict[str, Any]:
    """`lr_grid` and `objectives` as canonical text (a config file may give lists); objectives only for a
    strategy that optimises several."""
    for key in ("lr_grid", "objectives"):
        if isinstance(values.get(key), (list, tuple)):
            values[key] = ",".join(str(v) for v in values[key])
    if values.get("lr_grid") is not None:
        try:
            values["lr_grid"] = format_lr_grid(parse_lr_grid(str(values["lr_grid"])))
        except UsageError as err:
            raise UsageError(f"{where}{err}") from None
    strategy = str(values.get("strategy", SearchConfig.strategy)).partition(":")[0]
    if values.get("objectives") and strategy not in MULTI_OBJECTIVE_STRATEGIES:
        raise UsageError(f"{where}objectives: strategy {strategy!r} optimises one objective; use "
                         f"{' or '.join(MULTI_OBJECTIVE_STRATEGIES)}")
    return values


def make_executor(config: SearchConfig) -> Executor:
    """The executor the configuration names, with its per-candidate budgets."""
    options: dict[str, Any] = {"time_limit_s": config.candidate_time_limit_s, "max_params": config.max_params,
                               "device": config.device, "eval_every": config.eval_every,
                               "keep_weights": config.keep_weights > 0, "train_seeds": config.train_seeds}
    if config.executor.partition(":")[0] == "ray":
        options |= {"address": config.ray_address, "num_cpus": config.num_cpus, "num_gpus": config.num_gpus,
                    "max_retries": config.max_retries}
    return evaluators.make_executor(config.executor, workers=config.workers, **options)


def seeds(config: SearchConfig, task: Task) -> list[Arch]:
    if not config.seed_with:
        return []
    if config.seed_with == "all":
        return [arch for _, arch in baselines(task, max_params=config.max_params)]
    return [get_baseline(name.strip(), task, max_params=config.max_params)
            for name in config.seed_with.split(",") if name.strip()]


def run_search(config: SearchConfig, store: Store, *, resume: bool = False, db_url: str | None = None,
               on_progress: Callable[[Progress], None] | None = None,
               on_strategy: Callable[[Any], None] | None = None, task: Task | None = None) -> Progress:
    """Create (or, with `resume`, reopen) the search `config.name` in `store` and run it to its budget.

    A resumed search's configuration comes from the store, so its task must be a registered one: a
    stored 'module:factory' spec is refused, never imported. Pass the `task` the user named (e.g. a
    factory from `resume --task`) to use it instead; it must be the task the search ran."""
    if task is None:
        task = get_task(config.task, allow_factory=not resume)
    elif resume and task.spec != config.task:
        raise TaskError(f"--task {task.spec[:60]!r} is not the task search {config.name!r} ran ({config.task[:60]!r})")
    config = SearchConfig(**{**asdict(config), "task": task.spec, "steps": config.steps or task.recipe.steps})
    options: dict[str, Any] = {"weights": read_weights(config.weights)} if config.weights else {}
    spec = config.strategy
    if options and not spec.startswith("pcfg-learn"):
        raise UsageError("--weights seeds only the pcfg-learn strategy")
    rates = parse_lr_grid(config.lr_grid)
    if config.objectives:
        if parse_strategy(spec)[0] not in MULTI_OBJECTIVE_STRATEGIES:
            raise UsageError(f"--objectives: strategy {spec!r} optimises one objective; use "
                             f"{' or '.join(MULTI_OBJECTIVE_STRATEGIES)}")
        options["objectives"] = parse_objectives(config.objectives, task)
    strategy = make_strategy(spec, task, steps=config.steps, seed=config.seed,
                             limits=Limits(max_params=config.max_params), initial=seeds(config, task),
                             train_seed=config.train_seed, storage=db_url, study_name=f"einsearch:{config.name}",
                             fidelity=config.fidelity, extra=options)
    if isinstance(strategy, Asha) and config.fidelity:
        strategy.fidelity_note = fidelity_warning(store, task.spec, config.fidelity)
        if strategy.fidelity_note:
            log.warning("%s", strategy.fidelity_note)
    runs = config.budget * max(1, len(rates))  # training runs: each architecture at every rate
    if rates:
        strategy = LrGrid(strategy, rates)
    executor = make_executor(config)
    if not resume:  # only once everything above is known to work
        store.create_search(config.name, task=task.spec, strategy=config.strategy, config=asdict(config),
                            seed=config.seed, budget=runs)
    if on_strategy is not None:
        on_strategy(strategy)
    loop = SearchLoop(strategy, executor, store, task=task, search=config.name,
                      budget=runs, workers=config.workers, time_limit_s=config.time_limit_s,
                      keep_weights=config.keep_weights, on_progress=on_progress, leases=loop_leases(store, config.name),
                      train_seeds=config.train_seeds)
    return drive(loop, store, config.name, executor, resume=resume)


def loop_leases(store: Store, name: str) -> Leases | None:
    """The leases a loop named `name` holds on its runs; their heartbeat also keeps the search from showing
    as stale while a long run trains (every loop that `drive` runs needs them: search, fidelity, recheck)."""
    return Leases(store, name, takeover_reason=INTERRUPTED) if supports_leases(store) else None


def drive(loop: SearchLoop, store: Store, name: str, executor: Executor, *, resume: bool) -> Progress:
    """Run `loop` as the search `name` (a search's, fidelity's, recheck's): restore it first when resuming,
    mark it running, then finished (or interrupted on Ctrl-C); the loop's leases, if any, are held while it
    runs, and the executor is shut down in every case."""
    if resume:
        loop.restore()
    store.set_search_status(name, "running")
    if loop.leases is not None:
        loop.leases.start()
    try:
        progress = loop.run()
    except KeyboardInterrupt:
        store.set_search_status(name, "interrupted")
        raise
    finally:
        if loop.leases is not None:
            loop.leases.stop()
        executor.shutdown()
    store.set_search_status(name, "finished")
    return progress


def stored_config(store: Store, name: str) -> SearchConfig:
    record = store.get_search(name)
    known = set(SearchConfig.__dataclass_fields__)
    return SearchConfig(**{k: v for k, v in record.config.items() if k in known})
