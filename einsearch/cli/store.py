"""Commands on the results database: leaderboard and searches (plus the helpers show/plot/report share)."""
from __future__ import annotations

import csv
import sys
from contextlib import contextmanager
from typing import Iterator, Optional

import typer
from rich import box
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from einsearch.cli.common import (DbOpt, JsonOpt, MaxParamsOpt, app, console, default_db, emit_json, err_console, fail,
                                  parse_count)
from einsearch.storage import Store, StoreError


@contextmanager
def opened_store(db: str | None) -> Iterator[Store]:
    """The store at `db` (default: $EINSEARCH_DB or ./einsearch.db), which must exist; any database
    problem ends the command with one line and exit 2."""
    try:
        with Store.open(db or default_db(), create=False) as store:
            yield store
    except StoreError as err:
        fail(str(err))
    except SQLAlchemyError as err:
        first = str(getattr(err, "orig", None) or err).strip().splitlines()
        fail(f"database error: {first[0] if first else type(err).__name__}")


def canonical_task(spec: str | None) -> str | None:
    """A task spec in canonical form ('toy-causal:seq=32,vocab=64' -> its fields in order); a bare name
    stays a name (it matches every parameter setting), a preset ('mqar-tiny') becomes its spec; an
    unknown task is used as given."""
    if spec is None:
        return spec
    from einsearch.evaluators.task import TaskError, get_task

    try:
        task = get_task(spec)
    except TaskError:
        return spec
    return spec if spec == task.spec.partition(":")[0] else task.spec


def short(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and value >= 10_000:
        return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k"
    return str(value)


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command()
def leaderboard(
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Only this task: a name or a full spec."),
    search: Optional[str] = typer.Option(None, "--search", "-s", help="Only this search's evaluations."),
    metric: Optional[str] = typer.Option(None, "--metric", "-m", help="Rank by this metric (default: each "
                                         "evaluation's main metric)."),
    max_params: Optional[str] = MaxParamsOpt,
    uses: Optional[list[str]] = typer.Option(None, "--uses", help="Only architectures using this primitive "
                                             "(repeat for several)."),
    top: int = typer.Option(20, "--top", "-k", help="How many architectures."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json (one object per line) or csv."),
    db: Optional[str] = DbOpt,
) -> None:
    """The best evaluation of each architecture, ranked; ties go to fewer parameters."""
    if fmt not in ("table", "json", "csv"):
        fail(f"--format must be table, json or csv, got {fmt!r}")
    if top < 1:
        fail(f"--top must be at least 1, got {top}")
    budget = parse_count(max_params, "--max-params")
    with opened_store(db) as store:
        if search is not None and store.find_search(search) is None:
            fail(f"--search: no search named {search!r} in {store.where}")
        if metric is not None and not store.has_metric(metric):
            fail(f"--metric: no evaluation reports a metric named {metric!r} (main metrics: "
                 f"{', '.join(store.metric_names()) or 'none yet'})")
        rows = [row.to_dict() for row in store.leaderboard(task=canonical_task(task), search=search, metric=metric,
                                                           max_params=budget, uses=uses or (), top=top)]
    filters = {"--task": task, "--search": search, "--metric": metric, "--max-params": max_params,
               "--uses": ",".join(uses or ()) or None}
    given = ", ".join(f"{k} {v}" for k, v in filters.items() if v is not None)
    if not rows and given:
        err_console.print(f"nothing matched: no finished evaluation with {given}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if fmt == "json":
        for row in rows:
            emit_json(row)
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["rank"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        metric_name = rows[0]["metric"] if rows else (metric or "metric")
        title = f"leaderboard: {len(rows)} architectures" + (f", task {task}" if task else "")
        table = Table(title=title, box=box.SIMPLE_HEAD, caption="hash: its first 12 digits (enough for `einsearch show`)")
        for col in ("#", metric_name, "params", "steps", "eval", "hash", "search", "architecture"):
            table.add_column(col, no_wrap=True)
        room = max(10, console.width - 72)  # cut to the terminal (`show HASH` or --format json has it all)
        for row in rows:
            table.add_row(str(row["rank"]), short(row["value"]), short(row["params"]), str(row["steps"]),
                          str(row["evaluation"]), row["arch_hash"][:12], clip(row["search"] or "-", 12),
                          clip(row["arch"], room))
        console.print(table)


@app.command()
def searches(json: bool = JsonOpt, db: Optional[str] = DbOpt) -> None:
    """Every search with its task, strategy, status and evaluation counts."""
    with opened_store(db) as store:
        rows = [summary.to_dict() for summary in store.searches()]
    if json:
        for row in rows:
            emit_json(row)
        return
    table = Table(title=f"{len(rows)} searches", caption="done: successful evaluations (cache hits included) "
                  "out of the budget")
    for col in ("name", "strategy", "status", "done", "failed", "running", "cache hits"):
        table.add_column(col, no_wrap=True)
    table.add_column("task", overflow="fold", min_width=20)
    for row in rows:
        done = f"{row['completed']}/{row['budget']}" if row["budget"] is not None else str(row["completed"])
        table.add_row(row["name"], row["strategy"], row["status"], done, str(row["failed"]), str(row["running"]),
                      str(row["cache_hits"]), row["task"])
    console.print(table)
