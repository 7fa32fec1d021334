"""`einsearch baselines`: the named baseline architectures at a size."""
from __future__ import annotations

import functools
from typing import Optional

import typer
from rich.table import Table

from einsearch.cli.common import (JsonOpt, MaxParamsOpt, TaskOpt, app, console, emit_json, err_console, fail,
                                  parse_count)


@app.command("baselines")
def baselines_command(
    task: str = TaskOpt,
    width: Optional[int] = typer.Option(None, "--width", help="Model width (default 64, or the largest that fits)."),
    depth: Optional[int] = typer.Option(None, "--depth", help="Times each baseline's repeating unit is stacked."),
    max_params: Optional[str] = MaxParamsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List the named baseline architectures for a task, at a size."""
    from einsearch.grammar.tree import MAX_REPEAT, MAX_WIDTH, MIN_WIDTH

    if width is not None and not MIN_WIDTH <= width <= MAX_WIDTH:
        fail(f"--width must be {MIN_WIDTH}..{MAX_WIDTH}, got {width}")
    if depth is not None and not 1 <= depth <= MAX_REPEAT:
        fail(f"--depth must be 1..{MAX_REPEAT}, got {depth}")
    budget = parse_count(max_params, "--max-params")
    compute = functools.partial(_baseline_rows, task, width, depth, budget)
    _, _, after = task.partition(":")
    if after and "=" not in after:  # 'module:factory': the user's code, which no memo fingerprints
        rows, skipped = compute()
    else:  # a function of einsearch's code: kept on disk, so a later call imports no torch
        from einsearch.memo import DiskMemo

        rows, skipped = DiskMemo("baselines").get(repr((task, width, depth, budget)), compute)
    if as_json:
        for name, arch, params in rows:
            emit_json({"name": name, "arch": str(arch), "params": params})
        return
    table = Table(title=f"baselines for {task}")
    for column in ("name", "params", "architecture"):
        table.add_column(column, overflow="fold")
    for name, arch, params in rows:
        table.add_row(name, f"{params:,}", str(arch))
    console.print(table)
    for name, reason in skipped:
        err_console.print(f"[dim]skipped {name}: {reason}[/]", highlight=False)


def _baseline_rows(task: str, width: int | None, depth: int | None,
                   max_params: int | None) -> tuple[list[list], list[list]]:
    """([name, architecture string, params] per baseline that fits, [name, reason] per one skipped)."""
    from einsearch.grammar import check
    from einsearch.search.library import library
    from einsearch.tasks import get_task

    resolved = get_task(task)
    found, skipped = library(resolved, width, depth, max_params)
    return ([[name, str(arch), check(arch, resolved).params] for name, arch in found],
            [[name, reason] for name, reason in skipped])
