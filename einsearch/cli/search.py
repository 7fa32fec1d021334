"""`einsearch search` and `einsearch resume`: run architecture searches."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from einsearch.cli.common import (DbOpt, MaxParamsOpt, SeedOpt, TaskOpt, app, console, default_db, err_console,
                                  fail, parse_count)


def parse_duration(text: str | None) -> float | None:
    """'2h', '30m', '90s', '1.5h', '45' (seconds) -> seconds."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smhd]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        fail(f"--time-limit: {text!r} is not a duration like 90s, 30m or 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _open_store(db: str | None, create: bool = True) -> Any:
    from einsearch.storage.store import Store

    try:
        return Store.open(db or default_db(), create=create)
    except Exception as err:  # StoreError and driver errors: one line
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)


def _run(config: Any, db: str, resume: bool) -> None:
    from einsearch.search.run import run_search

    store = _open_store(db)
    columns = [TextColumn("[bold]{task.fields[name]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=err_console, transient=False) as bar:
        task_id = bar.add_task("search", total=config.budget, name=config.name, status="")

        def show(p: Any) -> None:
            best = "-" if p.best is None else f"{p.best:.4g}"
            bar.update(task_id, completed=p.done, status=f"failed {p.failed}  running {p.running}  "
                       f"cached {p.cache_hits}  best {best}")

        def note(strategy: Any) -> None:
            if strategy.warning:
                err_console.print(f"[yellow]warning:[/] {strategy.warning}", highlight=False)

        try:
            progress = run_search(config, store, resume=resume, db_url=db, on_progress=show, on_strategy=note)
        except KeyboardInterrupt:
            err_console.print(f"interrupted; continue with: einsearch resume {config.name}")
            raise typer.Exit(130)
        except ValueError as err:
            fail(str(err))
    _top_table(store, config.name, progress.stopped)


def _top_table(store: Any, name: str, stopped: str | None, top: int = 10) -> None:
    records = [r for r in store.evaluations(name) if r.status == "ok" and r.metric is not None]
    sign = 1 if not records or records[0].higher_is_better else -1
    records.sort(key=lambda r: (r.steps, sign * r.metric), reverse=True)
    table = Table(title=f"search {name}: top {min(top, len(records))} (stopped: {stopped})")
    for column in ("rank", "metric", "steps", "params", "hash", "architecture"):
        table.add_column(column, overflow="fold")
    seen = set()
    for record in records:
        if record.arch_hash in seen:
            continue
        seen.add(record.arch_hash)
        table.add_row(str(len(seen)), f"{record.metric:.4g}", str(record.steps),
                      f"{record.params:,}" if record.params else "-", record.arch_hash, record.arch)
        if len(seen) == top:
            break
    console.print(table)


@app.command("search")
def search_command(
    task: str = TaskOpt,
    strategy: str = typer.Option("evolution", "--strategy", "-s",
                                 help="random, evolution, tpe, gp, cmaes, qmc, random-optuna, nsga2, pcfg-learn "
                                      "(options after ':', e.g. evolution:population=10)."),
    budget: int = typer.Option(20, "--budget", "-n", help="Evaluations to run."),
    steps: int = typer.Option(200, "--steps", help="Training steps at full fidelity."),
    fidelity: Optional[str] = typer.Option(None, "--fidelity", help="asha:min_steps,max_steps,eta"),
    time_limit: Optional[str] = typer.Option(None, "--time-limit", help="Stop asking after this long, e.g. 2h."),
    max_params: Optional[str] = MaxParamsOpt,
    workers: int = typer.Option(1, "--workers", "-w", help="Candidates trained at once."),
    executor: str = typer.Option("local", "--executor", help="local, ray, or fake (the fake evaluator)."),
    seed_with: Optional[str] = typer.Option(None, "--seed-with", help="Baselines to start from: a,b or all."),
    name: Optional[str] = typer.Option(None, "--name", help="Search name (default: strategy and time)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="pcfg-learn: learned weights TOML to start from."),
    db: Optional[str] = DbOpt,
    seed: int = SeedOpt,
) -> None:
    """Search architectures for a task; shows progress, then the top candidates."""
    from einsearch.search.run import SearchConfig

    if budget < 1 or workers < 1 or steps < 1:
        fail("--budget, --workers and --steps must be >= 1")
    name = name or f"{strategy.split(':')[0]}-{datetime.now():%Y%m%d-%H%M%S}"
    config = SearchConfig(name=name, task=task, strategy=strategy, budget=budget, steps=steps, fidelity=fidelity,
                          max_params=parse_count(max_params, "--max-params"), workers=workers, executor=executor,
                          seed_with=seed_with, seed=seed, time_limit_s=parse_duration(time_limit), weights=weights)
    _run(config, db or default_db(), resume=False)


@app.command("resume")
def resume_command(name: str = typer.Argument(..., help="The search to continue."), db: Optional[str] = DbOpt) -> None:
    """Continue a stopped search where it was: finished results kept, interrupted ones re-run."""
    from einsearch.search.run import stored_config

    store = _open_store(db, create=False)
    if store.find_search(name) is None:
        fail(f"no search named {name!r} in {store.where}")
    _run(stored_config(store, name), db or default_db(), resume=True)
