"""`einsearch evaluate`: train one architecture on a task and print its metrics."""
from __future__ import annotations

import dataclasses
import logging
import re

import typer
from rich.table import Table

from einsearch.cli.common import JsonOpt, MaxParamsOpt, SeedOpt, TaskOpt, app, console, emit_json, fail, parse_count
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from einsearch.evaluators.types import Candidate, Result

log = logging.getLogger(__name__)


def _arch(text: str, task) -> str:
    """An architecture string, or the name of a baseline (e.g. 'transformer') sized for the task."""
    from einsearch.grammar import check, parse

    if re.fullmatch(r"[a-z_][a-z0-9_]*", text.strip()):
        from einsearch.search.library import get_baseline

        return str(get_baseline(text.strip(), task))
    arch = parse(text)
    check(arch, task)
    return str(arch)


def _portable_spec(text: str, task) -> str:
    """The canonical spec, unless it does not resolve (a `module:factory` task): then the text given."""
    from einsearch.tasks import TaskError, get_task

    try:
        get_task(task.spec)
        return task.spec
    except TaskError:
        return text


def _run_all(candidates: list[Candidate], executor: str, ray_address: str | None, **budgets) -> list[Result]:
    """Each candidate's result, in order (one executor for all of them)."""
    from einsearch.evaluators.executor import make_executor

    options = dict(budgets)
    if executor == "ray" and ray_address:
        options["address"] = ray_address
    runner = make_executor(executor, workers=1, **options)
    try:
        keys = [runner.submit(candidate) for candidate in candidates]
        done: dict = {}
        while len(done) < len(keys):
            done.update(runner.wait())
        return [done[key] for key in keys]
    finally:
        runner.shutdown()


def _best_rate(candidates: list[Candidate], results: list[Result], higher_is_better: bool) -> int:
    """The index of the best successful run (the first of the grid on a tie; the first if all failed)."""
    from einsearch.search.lr_grid import best_run

    def score(result: Result) -> float | None:
        if not result.ok or result.metric is None:
            return None
        return result.metric if higher_is_better else -result.metric

    rates = [c.lr for c in candidates]
    rate, _ = best_run(dict(zip(rates, results)), rates, score)
    return rates.index(rate)


def _grid_table(candidates: list[Candidate], results: list[Result], best: int) -> None:
    table = Table(title="learning-rate grid: the best run is kept", show_header=True)
    for column in ("lr", "status", results[best].metric_name or "metric", "loss"):
        table.add_column(column)
    for i, (candidate, result) in enumerate(zip(candidates, results)):
        mark = " *" if i == best else ""
        metric = "-" if result.metric is None else f"{result.metric:.4f}"
        loss = "-" if result.loss is None else f"{result.loss:.4f}"
        table.add_row(f"{candidate.lr:g}{mark}", "ok" if result.ok else f"failed: {result.error}", metric, loss)
    console.print(table)


def _run_shown(candidates: list[Candidate], executor: str, ray_address: str | None, **budgets) -> list[Result]:
    """`_run_all`, with a start and a finish line (and, on a terminal, a live elapsed-time panel) on stderr."""
    from einsearch.cli.common import err_console
    from einsearch.cli.progress_view import ProgressView
    from einsearch.grammar.compact import compact

    candidate = candidates[0]
    title = f"evaluate {candidate.arch.hash[:12]}"
    runs = f"{len(candidates)} runs of " if len(candidates) > 1 else ""
    with ProgressView(title, total=None, console=err_console) as view:
        view.log(f"{title}: started, {runs}{candidate.steps} steps on {candidate.task} ({executor}): "
                 f"{compact(candidate.arch)}")
        view.update(note=f"training {runs}{candidate.steps} steps")
        results = _run_all(candidates, executor, ray_address, **budgets)
        for result in results:
            what = (f"ok {result.metric_name or 'metric'}="
                    f"{'-' if result.metric is None else format(result.metric, '.4g')}" if result.ok
                    else f"{result.status} ({(result.error or '?').strip().splitlines()[0][:120]})")
            view.log(f"{title}: finished {what} in {view.elapsed():.1f} s")
        view.update(done=1, note=what)
    return results


def _summary(candidate: Candidate, result: Result) -> None:
    table = Table(title=f"evaluate: {candidate.arch.hash} on {candidate.task}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    status = "[green]ok[/]" if result.ok else f"[red]failed[/]: {result.error}"
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    rows = [("status", status), (result.metric_name or "metric", fmt(result.metric, ".4f")),
            ("best", fmt(result.best_metric, ".4f")), ("loss", fmt(result.loss, ".4f")),
            ("params", fmt(result.params, ",d")), ("FLOPs/token", fmt(result.flops_per_token, ",d")),
            ("steps", str(candidate.steps) + ("" if candidate.lr is None else f" at lr {candidate.lr:g}")),
            ("wall time", f"{result.wall_time_s:.2f} s"),
            ("train time", f"{result.train_time_s:.2f} s"), ("tokens/s", fmt(result.tokens_per_s, ",.0f")),
            ("peak memory", fmt(result.peak_mem_bytes and result.peak_mem_bytes / 2**20, ",.0f") + " MiB"),
            ("device", f"{result.device or '-'} on {result.host or '-'}")]
    rows[2:2] = [(name, fmt(value, ".4f")) for name, value in result.extra_metrics.items()]  # e.g. ridge_mse
    if result.patterns:
        rows.append(("attention patterns", ", ".join(p["pattern"] for p in result.patterns)))
    for name, value in rows:
        table.add_row(name, value)
    if result.curve:
        table.add_row("curve", "  ".join(f"{s}:{m:.3f}" for s, m in result.curve[-6:]))
    console.print(table)


@app.command()
def evaluate(
    arch: str = typer.Argument(..., help="Architecture string, or a baseline name (e.g. transformer)."),
    task: str = TaskOpt,
    steps: int = typer.Option(None, "--steps", help="Training steps (the fidelity) [the task's recipe]."),
    seed: int = SeedOpt,
    executor: str = typer.Option("local", "--executor", help="local (this process) or ray."),
    ray_address: str = typer.Option(None, "--ray-address", help="Join this Ray cluster (default: start a local one)."),
    time_limit: float = typer.Option(None, "--time-limit", help="Wall-clock limit in seconds."),
    max_params: str = MaxParamsOpt,
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: cuda if available)."),
    lr_grid: str = typer.Option(None, "--lr-grid", help="Train at each of these learning rates (e.g. "
                                "1e-3,3e-3,1e-2) and report the best run."),
    train_seeds: int = typer.Option(1, "--train-seeds", help="Train on this many seeds (--seed, --seed + 1, ...) "
                                    "and report their mean, with each seed's value."),
    json: bool = JsonOpt,
) -> None:
    """Train one architecture on a task and print its metrics (failures are reported, exit code 1)."""
    if steps is not None and steps < 1:
        fail(f"--steps must be >= 1, got {steps}")
    if executor not in ("local", "ray"):
        fail(f"--executor must be local or ray, got {executor!r}")
    if time_limit is not None and time_limit <= 0:
        fail(f"--time-limit must be positive, got {time_limit}")
    if train_seeds < 1:
        fail(f"--train-seeds must be >= 1, got {train_seeds}")
    from einsearch.evaluators.types import Candidate
    from einsearch.tasks import get_task

    task_obj = get_task(task)
    steps = task_obj.recipe.steps if steps is None else steps
    from einsearch.search.lr_grid import parse_lr_grid

    rates = parse_lr_grid(lr_grid)
    candidate = Candidate(_arch(arch, task_obj), _portable_spec(task, task_obj), steps, seed, op="evaluate")
    budgets = dict(device=device, time_limit_s=time_limit, max_params=parse_count(max_params, "--max-params"),
                   train_seeds=train_seeds)
    grid = [dataclasses.replace(candidate, lr=rate) for rate in rates] or [candidate]
    results = _run_shown(grid, executor, ray_address, **budgets)
    best = _best_rate(grid, results, task_obj.higher_is_better)
    candidate, result = grid[best], results[best]
    if json:
        runs = {"lr_grid": [{"lr": c.lr, **{k: r.to_dict()[k] for k in ("status", "metric", "loss", "error")}}
                            for c, r in zip(grid, results)]} if rates else {}
        emit_json({"arch": str(candidate.arch), "hash": candidate.arch.hash, "task": candidate.task,
                   "steps": steps, "seed": seed, "train_seeds": train_seeds, "lr": candidate.lr, **result.to_dict(),
                   **runs})
    else:
        if rates:
            _grid_table(grid, results, best)
        _summary(candidate, result)
    if not result.ok:
        raise typer.Exit(1)
