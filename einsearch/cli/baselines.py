"""`einsearch baselines`: the named baseline architectures at a size."""
from __future__ import annotations

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
    from einsearch.grammar import check
    from einsearch.search.library import library
    from einsearch.tasks import get_task

    if width is not None and width < 8 or depth is not None and depth < 1:
        fail("--width must be >= 8 and --depth >= 1")
    resolved = get_task(task)
    found, skipped = library(resolved, width, depth, parse_count(max_params, "--max-params"))
    rows = [(name, arch, check(arch, resolved).params) for name, arch in found]
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
