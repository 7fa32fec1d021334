"""`einsearch search` and `einsearch resume`: run architecture searches."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Optional

import typer

from einsearch.cli.common import (DbOpt, MaxParamsOpt, app, console, default_db, err_console, fail, opened_store,
                                  parse_count)


def parse_duration(text: str | None, what: str = "--time-limit") -> float | None:
    """'2h', '30m', '90s', '1.5h', '45' (seconds) -> seconds."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smhd]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        fail(f"{what}: {text!r} is not a duration like 90s, 30m or 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _run(config: Any, db: str, resume: bool, task: Any = None) -> None:
    with opened_store(db, create=True) as store:
        _run_in(store, config, db, resume, task)


def _run_in(store: Any, config: Any, db: str, resume: bool, task: Any) -> None:
    from einsearch.cli.progress_view import ProgressView, search_update
    from einsearch.search.run import run_search

    with ProgressView(f"search {config.name}", total=config.budget, console=err_console) as view:
        def show(p: Any) -> None:
            search_update(view, p)

        def note(strategy: Any) -> None:  # called once the search is set up: a bad option never reads "started"
            view.log(f"search {config.name}: {'resumed' if resume else 'started'}, budget {config.budget}")
            if strategy.warning:
                view.log(f"warning: {strategy.warning}")

        try:
            progress = run_search(config, store, resume=resume, db_url=db, on_progress=show, on_strategy=note,
                                  task=task)
        except KeyboardInterrupt:
            err_console.print(f"interrupted; continue with: einsearch resume {config.name}")
            raise typer.Exit(130)
    _top_table(store, config.name, progress.stopped)
    from einsearch.cli.headline import print_headline
    print_headline(store, config.name)


def _top_table(store: Any, name: str, stopped: str | None, top: int = 10) -> None:
    records = [r for r in store.evaluations(name) if r.status == "ok" and r.metric is not None]
    sign = 1 if not records or records[0].higher_is_better else -1
    records.sort(key=lambda r: (r.steps, sign * r.metric), reverse=True)
    from einsearch.cli.arch_table import arch_table
    from einsearch.report.facts import arch_facts

    rows, seen = [], set()
    for record in records:
        if record.arch_hash in seen:
            continue
        seen.add(record.arch_hash)
        facts = arch_facts(record.arch, record.task)  # all of them: kept on disk, `leaderboard` reads them
        if len(rows) < top:
            rows.append({"rank": len(seen), "value": record.metric, "params": record.params,
                         "state_size": facts.state_size, "flops_per_token": record.flops_per_token,
                         "families": facts.families, "steps": record.steps, "evaluation": record.id,
                         "arch_hash": record.arch_hash, "search": record.search, "compact": facts.compact,
                         "lr": record.lr})
    metric = (records[0].metric_name if records else None) or "metric"
    console.print(arch_table(rows, title=f"search {name}: top {len(rows)} (stopped: {stopped})", metric=metric))


# CLI option -> SearchConfig field, where the names differ.
_FIELD = {"time_limit": "time_limit_s", "candidate_time_limit": "candidate_time_limit_s"}


def load_config_file(path: str) -> dict[str, Any]:
    """A search configuration TOML: the `search` options by name (dashes or underscores), flat or
    under a [search] table. Durations and counts accept the CLI's forms ("2h", "200k")."""
    import tomllib

    from einsearch.search.run import SearchConfig

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as err:
        fail(f"--config {path}: {err.strerror or err}")
    except tomllib.TOMLDecodeError as err:
        fail(f"--config {path}: not valid TOML ({err})")
    except UnicodeDecodeError as err:
        fail(f"--config {path}: not UTF-8 text (byte {err.start}); a TOML file must be UTF-8")
    data = data.get("search", data)
    known = set(SearchConfig.__dataclass_fields__) | set(_FIELD)
    values = {}
    for key, value in data.items():
        field = key.replace("-", "_")
        if field not in known or isinstance(value, dict):
            fail(f"--config {path}: unknown key {key!r}; keys are the `einsearch search` options")
        values[field] = value
    return values


def _to_config(values: dict[str, Any], where: str) -> Any:
    """Option values (CLI over file) -> a validated SearchConfig; one clear line on bad input."""
    from einsearch.search.run import SearchConfig, validated_config

    values = {_FIELD.get(k, k): v for k, v in values.items()}
    if isinstance(values.get("max_params"), (str, float)):
        values["max_params"] = parse_count(str(values["max_params"]), f"{where}max-params")
    for key in ("time_limit_s", "candidate_time_limit_s"):
        if isinstance(values.get(key), str):
            values[key] = parse_duration(values[key], where + key.removesuffix("_s").replace("_", "-"))
    values.setdefault("task", "toy-causal")  # as on every other command
    strategy = values.get("strategy", SearchConfig.strategy)
    values.setdefault("name", f"{strategy.split(':')[0]}-{datetime.now():%Y%m%d-%H%M%S}")
    return validated_config(values, where)


@app.command("search")
def search_command(
    config_file: Optional[str] = typer.Option(None, "--config", help="A TOML file of these options; "
                                              "options given on the command line win."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Task name with parameters, e.g. mqar-cpu."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s",
                                           help="evolution (default), random, tpe, gp, cmaes, qmc, random-optuna, "
                                                "nsga2, pcfg-learn (options after ':', e.g. evolution:population=10)."),
    budget: Optional[int] = typer.Option(None, "--budget", "-n", help="Evaluations to run [20]."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training steps at full fidelity [the task's recipe]."),
    fidelity: Optional[str] = typer.Option(None, "--fidelity", help="asha:min_steps,max_steps,eta"),
    time_limit: Optional[str] = typer.Option(None, "--time-limit", help="Stop asking after this long, e.g. 2h."),
    candidate_time_limit: Optional[str] = typer.Option(None, "--candidate-time-limit",
                                                       help="Fail a candidate that trains longer, e.g. 5m."),
    max_params: Optional[str] = MaxParamsOpt,
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Candidates trained at once [1]."),
    executor: Optional[str] = typer.Option(None, "--executor", help="ray (default), local, or fake (the fake "
                                                                    "evaluator)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join this Ray cluster (default: "
                                                                          "start a local one)."),
    num_cpus: Optional[float] = typer.Option(None, "--cpus-per-candidate", help="Ray: CPUs per candidate [1]."),
    num_gpus: Optional[float] = typer.Option(None, "--gpus-per-candidate", help="Ray: GPUs per candidate, "
                                                                                "fractional packs [0]."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: cuda if the worker "
                                                                "has one)."),
    seed_with: Optional[str] = typer.Option(None, "--seed-with", help="Baselines to start from: a,b or all."),
    keep_weights: Optional[int] = typer.Option(None, "--keep-weights", help="Keep the trained weights of the best "
                                               "K candidates [3]; 0 keeps none."),
    lr_grid: Optional[str] = typer.Option(None, "--lr-grid", help="Train each architecture at each of these "
                                          "learning rates (e.g. 1e-3,3e-3,1e-2) and score it by the best; the budget "
                                          "counts architectures."),
    train_seeds: Optional[int] = typer.Option(None, "--train-seeds", help="Train each candidate on this many "
                                              "seeds and score it by the mean (recall tasks jump off a plateau "
                                              "at a step that varies by seed) [1]."),
    objectives: Optional[str] = typer.Option(None, "--objectives", help="Multi-objective search (nsga2, evolution): "
                                             "the metric and costs, e.g. accuracy,state,params (or flops)."),
    name: Optional[str] = typer.Option(None, "--name", help="Search name (default: strategy and time)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="pcfg-learn: learned weights TOML to start from."),
    db: Optional[str] = DbOpt,
    seed: Optional[int] = typer.Option(None, "--seed", help="Search seed [0]."),
) -> None:
    """Search architectures for a task; shows progress, then the top candidates."""
    given = dict(task=task, strategy=strategy, budget=budget, steps=steps, fidelity=fidelity, time_limit=time_limit,
                 candidate_time_limit=candidate_time_limit, max_params=max_params, workers=workers,
                 executor=executor, ray_address=ray_address, num_cpus=num_cpus, num_gpus=num_gpus, device=device,
                 seed_with=seed_with, keep_weights=keep_weights, name=name, weights=weights, seed=seed,
                 lr_grid=lr_grid, objectives=objectives, train_seeds=train_seeds)
    values = load_config_file(config_file) if config_file else {}
    values |= {k: v for k, v in given.items() if v is not None}
    config = _to_config(values, f"--config {config_file}: " if config_file else "--")
    from einsearch.tasks import TaskError, get_task

    try:  # before the progress bar: a bad task is one line
        found = get_task(config.task)
    except TaskError as err:
        fail(f"--task: {err}")
    _run(config, db or default_db(), resume=False, task=found)


@app.command("resume")
def resume_command(name: str = typer.Argument(..., help="The search to continue."), db: Optional[str] = DbOpt,
                   task: Optional[str] = typer.Option(None, "--task", "-t", help="The search's task, when it is "
                                                      "not a registered one (a module:factory spec); the stored "
                                                      "spec is never imported.")) -> None:
    """Continue a stopped search where it was: finished results kept, interrupted ones re-run."""
    from einsearch.tasks import TaskError, get_task
    from einsearch.search.run import stored_config

    with opened_store(db) as store:
        if store.find_search(name) is None:
            fail(f"no search named {name!r} in {store.where}")
        config = stored_config(store, name)
    try:  # typed here: a factory may be imported; the stored spec only if it names a registered task
        found = get_task(task) if task is not None else get_task(config.task, allow_factory=False)
    except TaskError as err:
        fail(f"--task: {err}" if task is not None else f"search {name!r}: {err}")
    if task is not None and found.spec != config.task:
        fail(f"--task {task!r} is not the task search {name!r} ran ({config.task[:60]!r})")
    _run(config, db or default_db(), resume=True, task=found if task is not None else None)
