"""`einsearch export`: an architecture as one standalone Python file (torch alone), optionally with
its trained weights beside it."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import typer

from einsearch.cli.common import DbOpt, app, console, fail, opened_store


def _from_store(ref: str, db: str | None, task: str | None, weights: bool, out: Path) -> tuple[str, str, Path | None]:
    """(architecture string, task spec, weights file or None) for an evaluation id or architecture hash."""
    from einsearch.storage import ArchRecord
    from einsearch.tasks import list_tasks

    with opened_store(db) as store:
        found = store.resolve(ref)
        if isinstance(found, ArchRecord):  # an architecture: its best finished evaluation, if any
            done = [e for e in store.evaluations(arch_hash=found.hash) if e.status == "ok"
                    and (task is None or e.task == task) and (not weights or e.weights_path is not None)]
            scored = [e for e in done if e.metric is not None]
            best = max(scored, key=lambda e: e.metric if e.higher_is_better else -e.metric) if scored else (
                done[0] if done else None)
            if best is None and (weights or task is None):
                need = "saved weights" if weights else "an evaluation (or pass --task)"
                fail(f"architecture {found.hash} has no evaluation with {need}")
            found = best or found
        if isinstance(found, ArchRecord):
            return found.text, task, None
        if task is not None and task != found.task:
            fail(f"evaluation {found.id} was on task {found.task!r}, not {task!r}")
        # A 'module:factory' spec would import and call code named by the database: only on request.
        if task is None and found.task.partition(":")[0] not in {cls.name for cls in list_tasks()}:
            fail(f"the stored task {found.task[:60]!r} is not a registered task; pass --task to use it")
        if not weights:
            return found.arch, found.task, None
        source = store.weights_path(found.id)
        if source is None:
            fail(f"evaluation {found.id} has no saved weights")
        store.load_weights(found.id)  # verifies the file against its recorded SHA-256
        target = out.with_suffix(".safetensors")
        shutil.copyfile(source, target)
        return found.arch, found.task, target


def _best_of(search: str, db: str | None, weights: bool) -> str:
    """The evaluation id at the top of `search`'s leaderboard (with saved weights, when they are asked for)."""
    with opened_store(db) as store:
        if store.find_search(search) is None:
            fail(f"no search named {search!r} in {store.where}")
        rows = store.leaderboard(search=search, top=None if weights else 1)
        ids = [row.evaluation.id for row in rows
               if not weights or store.weights_path(row.evaluation.id) is not None]
    if not ids:
        fail(f"search {search!r} has no successful evaluation" + (" with saved weights" if weights else ""))
    return str(ids[0])


@app.command()
def export(
    ref: Optional[str] = typer.Argument(None, metavar="ID", help="Evaluation id (e.g. 12 or e12), architecture "
                                        "hash or unique prefix."),
    output: Path = typer.Option(..., "--output", "-o", help="The Python file to write, e.g. model.py."),
    arch: Optional[str] = typer.Option(None, "--arch", help="An architecture string instead of an ID."),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Task spec (required with --arch)."),
    weights: bool = typer.Option(False, "--weights", help="Copy the evaluation's trained weights next to the "
                                 "file (as NAME.safetensors); build() then loads them."),
    best: Optional[str] = typer.Option(None, "--best", metavar="SEARCH", help="Instead of an ID: the top of "
                                       "this search's leaderboard."),
    db: Optional[str] = DbOpt,
) -> None:
    """Write one standalone Python file (torch alone) with the model's classes, Model and build()."""
    if [ref, arch, best].count(None) != 2:
        fail("give one of: an ID, --best SEARCH, or --arch STRING (with --task)")
    if best is not None:
        ref = _best_of(best, db, weights)
    if arch is not None and task is None:
        fail("--arch needs --task")
    if arch is not None and weights:
        fail("--weights needs an evaluation ID (the weights come from the database)")
    if output.is_dir() or not output.parent.is_dir():
        fail(f"cannot write {output}: not a file in an existing directory")
    weights_file = None
    if ref is not None:
        arch, task, weights_file = _from_store(ref, db, task, weights, output)
    from einsearch.export import export_source, load_weights
    from einsearch.grammar import build
    from einsearch.tasks import get_task

    task = get_task(task)
    source = export_source(arch, task, weights_file=weights_file.name if weights_file else None)
    if weights_file is not None:  # the exported reader must accept the file: check it now, not later
        load_weights(build(arch, task), str(weights_file))
    try:
        output.write_text(source, encoding="utf-8")
    except OSError as err:
        fail(f"cannot write {output}: {err.strerror or err}")
    extra = f" and {weights_file}" if weights_file else ""
    console.print(f"wrote {output}{extra} ({len(source.splitlines())} lines)", highlight=False)
