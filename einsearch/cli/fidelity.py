"""`einsearch fidelity`: measure how well short trainings rank architectures as long ones do, or show
the measurements stored (`--show`)."""
from __future__ import annotations

from typing import Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from einsearch.cli.common import (DbOpt, JsonOpt, MaxParamsOpt, app, console, default_db, emit_json, err_console,
                                  fail, opened_store, parse_count)


def _table(records: list[Any], title: str) -> Table:
    from einsearch.search.asha import MIN_CORRELATION

    table = Table(title=title, caption=f"Spearman's rank correlation of the same candidates' results at two step "
                  f"budgets; under {MIN_CORRELATION} the low budget is a poor guide (ASHA warns)")
    for column in ("task", "low steps", "high steps", "spearman", "n", "measured by", "when"):
        table.add_column(column, overflow="fold")
    for r in records:
        rho = f"{r.spearman:.3f}" if r.spearman >= MIN_CORRELATION else f"[red]{r.spearman:.3f}[/]"
        table.add_row(r.task, str(r.low_steps), str(r.high_steps), rho, str(r.n), r.search or "-",
                      f"{r.created_at:%Y-%m-%d %H:%M}")
    return table


def _show(task: str | None, db: str | None, json: bool) -> None:
    from einsearch.cli.store import canonical_task

    with opened_store(db) as store:
        records = store.fidelity_correlations(canonical_task(task))
    if json:
        for record in records:
            emit_json(record.to_dict())
        return
    if not records:
        console.print("no fidelity measured" + (f" for {task}" if task else "") +
                      "; run `einsearch fidelity --task T --budgets 100,300,1000`")
        return
    console.print(_table(records, f"measured fidelity: {len(records)} pairs of budgets"))


@app.command()
def fidelity(
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Task name or spec, e.g. mqar-tiny."),
    budgets: Optional[str] = typer.Option(None, "--budgets", help="Step budgets to compare, e.g. 100,300,1000."),
    n: int = typer.Option(16, "--n", help="Candidates trained at every budget (baselines first, then samples)."),
    seed_with: Optional[str] = typer.Option(None, "--seed-with", help="Baselines among the candidates: a,b or all."),
    show: bool = typer.Option(False, "--show", help="Print the stored measurements (of --task only, if given)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed of the candidates."),
    train_seed: int = typer.Option(0, "--train-seed", help="Training seed."),
    max_params: Optional[str] = MaxParamsOpt,
    executor: str = typer.Option("ray", "--executor", help="ray (default), local, or fake (the fake evaluator)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Candidates trained at once."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join this Ray cluster."),
    num_cpus: float = typer.Option(1, "--cpus-per-candidate", help="Ray: CPUs per candidate."),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the run holding the evaluations (default: "
                                       "fixed by what is measured, so the same command resumes it)."),
    db: Optional[str] = DbOpt,
    json: bool = JsonOpt,
) -> None:
    """Train the same candidates at several step budgets and store the rank correlation between budgets."""
    if show:
        _show(task, db, json)
        return
    if task is None or budgets is None:
        fail("--task and --budgets are needed (or --show to print what is stored)")
    if workers < 1 or num_cpus <= 0:
        fail(f"--workers and --cpus-per-candidate must be positive, got {workers} and {num_cpus}")
    from einsearch.search.fidelity import measure_fidelity, parse_budgets
    from einsearch.search.run import SearchConfig
    from einsearch.tasks import get_task

    steps = parse_budgets(budgets)
    spec = get_task(task).spec
    config = SearchConfig(name=name or "", task=spec, executor=executor, workers=workers, seed_with=seed_with,
                          seed=seed, train_seed=train_seed, max_params=parse_count(max_params, "--max-params"),
                          ray_address=ray_address, num_cpus=num_cpus, keep_weights=0)
    with opened_store(db or default_db(), create=True) as store:
        columns = [TextColumn("[bold]fidelity"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[status]}"), TimeElapsedColumn()]
        with Progress(*columns, console=err_console, transient=False) as bar:
            bar_id = bar.add_task("fidelity", total=n * len(steps), status="")

            def progress(p: Any) -> None:
                bar.update(bar_id, completed=p.done, total=p.budget,
                           status=f"failed {p.failed}  running {p.running}  cached {p.cache_hits}")

            try:
                records = measure_fidelity(config, steps, n, store, on_progress=progress)
            except KeyboardInterrupt:
                err_console.print("interrupted; the same command resumes it")
                raise typer.Exit(130)
    if json:
        for record in records:
            emit_json(record.to_dict())
    elif records:
        console.print(_table(records, f"fidelity on {spec}: {n} candidates at {', '.join(map(str, steps))} steps"))
    else:
        err_console.print("[yellow]warning:[/] no correlation could be measured (too few successful candidates "
                          "at some budget, or every score equal)", highlight=False)
