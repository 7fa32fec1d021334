"""`einsearch recheck`: train a search's best architectures again on more training seeds and rank them
by the mean, so a lucky draw on one seed does not decide the winner."""
from __future__ import annotations

from typing import Any, Optional

import typer
from rich import box
from rich.table import Table

from einsearch.cli.common import DbOpt, JsonOpt, app, console, emit_json, err_console, fail, opened_store, short


def _table(rows: list[Any], search: str, seeds: list[int], own: int, metric: str) -> Table:
    from einsearch.grammar.compact import compact_text

    owned = f"seed {seeds[0]}: the search's own run" if own == 1 else \
        f"seeds {seeds[0]}-{seeds[own - 1]}: the search's own runs"
    table = Table(title=f"{search}: the best {len(rows)} on {len(seeds)} training seeds", box=box.SIMPLE_HEAD,
                  caption=f"{owned}; ranked by the mean {metric} (± population std over seeds); a failed run "
                          f"leaves no mean")
    for column in ("#", "mean", *(f"seed {s}" for s in seeds), "params", "eval"):
        table.add_column(column, no_wrap=True)
    table.add_column("architecture", overflow="fold", min_width=24)
    for rank, row in enumerate(rows, 1):
        mean = f"{row.mean:.4g} ± {row.std:.2g}" if row.complete else "-"
        cells = ["failed" if row.runs.get(s) is None else f"{row.runs[s]:.4g}" for s in seeds]
        table.add_row(str(rank), mean, *cells, short(row.params), f"e{row.evaluation}", compact_text(row.arch))
    return table


@app.command()
def recheck(
    search: str = typer.Argument(..., help="The search whose best architectures to train again."),
    seeds: int = typer.Option(3, "--seeds", help="Training seeds in all, the search's own included (all of "
                              "them after a --train-seeds search)."),
    top: int = typer.Option(5, "--top", "-k", help="How many of the search's best architectures."),
    arch: Optional[list[str]] = typer.Option(None, "--arch", help="This architecture (canonical string) instead "
                                             "of the top ones; repeat for several."),
    executor: Optional[str] = typer.Option(None, "--executor", help="ray, local or fake (default: the search's)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Runs at once (default: the search's)."),
    db: Optional[str] = DbOpt,
    json: bool = JsonOpt,
) -> None:
    """Train the search's best architectures on more training seeds (same steps and rate) and rank them by
    the mean. Runs are stored in the search NAME-check; the same command resumes or re-reads them."""
    if workers is not None and workers < 1:
        fail(f"--workers must be at least 1, got {workers}")
    from einsearch.search.recheck import recheck as run_recheck

    with opened_store(db) as store:
        if store.find_search(search) is None:
            fail(f"no search named {search!r} in {store.where}")
        try:
            rows = run_recheck(store, search, seeds=seeds, top=top, archs=arch or (), executor=executor,
                               workers=workers)
        except KeyboardInterrupt:
            err_console.print("interrupted; the same command resumes it")
            raise typer.Exit(130)
    if json:
        for row in rows:
            emit_json({"arch": row.arch, "evaluation": row.evaluation, "params": row.params, "mean": row.mean,
                       "std": row.std, "runs": {str(seed): value for seed, value in row.runs.items()}})
        return
    console.print(_table(rows, search, list(rows[0].runs), rows[0].own_seeds, rows[0].metric_name))
