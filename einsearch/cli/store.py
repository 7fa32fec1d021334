"""Commands on the results database: leaderboard and searches (plus the helpers show/plot/report share)."""
from __future__ import annotations

import csv
import sys
from typing import Optional

import typer
from rich.table import Table

from einsearch.cli.common import (DbOpt, JsonOpt, MaxParamsOpt, app, clip, console, emit_json, err_console, fail,
                                  opened_store, parse_count, short)


def canonical_task(spec: str | None) -> str | None:
    """A task spec in canonical form ('toy-causal:seq=32,vocab=64' -> its fields in order); a bare name
    stays a name (it matches every parameter setting), a preset ('mqar-tiny') becomes its spec; an
    unknown task is used as given."""
    if spec is None:
        return spec
    from einsearch.tasks import TaskError, get_task

    try:
        task = get_task(spec)
    except TaskError:
        return spec
    return spec if spec == task.spec.partition(":")[0] else task.spec


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
    pareto: bool = typer.Option(False, "--pareto", help="Only the non-dominated front (per task) of --objectives."),
    objectives: str = typer.Option("accuracy,state,params", "--objectives", help="With --pareto: the metric and "
                                   "costs to trade off (state, params, flops)."),
    db: Optional[str] = DbOpt,
) -> None:
    """The best evaluation of each architecture, ranked; ties go to fewer parameters. With --pareto, the
    architectures no other one beats on every objective (best metric, least state, fewest parameters)."""
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
        ranked = store.leaderboard(task=canonical_task(task), search=search, metric=metric, max_params=budget,
                                   uses=uses or (), top=None if pareto else top)
        rows = [row.to_dict() for row in ranked]
    filters = {"--task": task, "--search": search, "--metric": metric, "--max-params": max_params,
               "--uses": ",".join(uses or ()) or None}
    given = ", ".join(f"{k} {v}" for k, v in filters.items() if v is not None)
    if not rows and given:
        err_console.print(f"nothing matched: no finished evaluation with {given}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    rows = [{**row, **_facts(row["arch"], row["task"])} for row in rows]
    if pareto:
        rows = _front(rows, objectives)[:top]
    if fmt == "json":
        for row in rows:
            emit_json(row)
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["rank"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        from einsearch.cli.arch_table import arch_table

        metric_name = rows[0]["metric"] if rows else (metric or "metric")
        title = (f"{'Pareto front' if pareto else 'leaderboard'}: {len(rows)} architectures"
                 + (f", task {task}" if task else "") + (f" ({objectives})" if pareto else ""))
        console.print(arch_table(rows, title=title, metric=metric_name))


def _front(rows: list[dict], objectives: str) -> list[dict]:
    """The rows no other row of the same task dominates on `objectives`, in leaderboard order, re-ranked.
    `rows` come best first, so within a task the first value is the best: that gives the direction."""
    from einsearch.search.objectives import maximised, parse_objectives
    from einsearch.search.pareto import pareto_front

    names = parse_objectives(objectives)
    keep: set[int] = set()
    for spec in dict.fromkeys(row["task"] for row in rows):
        mine = [(i, row) for i, row in enumerate(rows) if row["task"] == spec]
        higher = mine[0][1]["value"] >= mine[-1][1]["value"]
        points = [(i, maximised({"metric": row["value"], "state": row["state_size"], "params": row["params"],
                                 "flops": row["flops_per_token"]}, names, higher)) for i, row in mine]
        keep |= {i for i, _ in pareto_front(points)}
    front = [row for i, row in enumerate(rows) if i in keep]
    return [{**row, "rank": rank} for rank, row in enumerate(front, start=1)]


def _facts(arch: str, task: str) -> dict:
    """The compact notation, decoding-state size and mixer families of a stored architecture."""
    from einsearch.report.facts import arch_facts

    facts = arch_facts(arch, task)
    return {"compact": facts.compact, "state_size": facts.state_size, "families": list(facts.families)}


@app.command()
def searches(json: bool = JsonOpt, db: Optional[str] = DbOpt) -> None:
    """Every search with its task, strategy, status and evaluation counts."""
    with opened_store(db) as store:
        rows = [summary.to_dict() for summary in store.searches()]
        for row in rows:
            best = store.leaderboard(search=row["name"], top=1)
            row["best"] = best[0].score if best else None
            row["best_arch"] = best[0].evaluation.arch if best else None
    from einsearch.report.facts import compact_text

    for row in rows:
        row["best_compact"] = compact_text(row["best_arch"]) if row["best_arch"] else None
    if json:
        for row in rows:
            emit_json(row)
        return
    from rich.text import Text

    from einsearch.cli.arch_table import WIDE

    wide = console.width >= WIDE
    table = Table(title=f"{len(rows)} searches", caption="done: successful evaluations (cache hits included) "
                  "out of the budget" + ("; best: the best metric and its architecture" if wide else ""))
    for col in ("name", "strategy", "status", "done", "failed", "running", "cache hits") + (("best",) if wide else ()):
        table.add_column(col, no_wrap=True)
    table.add_column("task", overflow="fold", min_width=20)
    if wide:
        table.add_column("best architecture", overflow="fold", min_width=24)
    for row in rows:
        done = f"{row['completed']}/{row['budget']}" if row["budget"] is not None else str(row["completed"])
        status = "stale (resume it)" if row["stale"] else row["status"]
        cells = [row["name"], row["strategy"], status, done, str(row["failed"]), str(row["running"]),
                 str(row["cache_hits"])] + ([short(row["best"])] if wide else []) + [row["task"]]
        table.add_row(*map(Text, cells), *([Text(row["best_compact"] or "-")] if wide else []))
    console.print(table)
    if not wide and any(row["best_compact"] for row in rows):  # the architectures below, never cut
        console.print("best of each search (`einsearch show HASH` gives the canonical string):")
        for row in rows:
            if row["best_compact"]:
                console.print(Text(f"  {row['name']}: {short(row['best'])}  {row['best_compact']}"))
