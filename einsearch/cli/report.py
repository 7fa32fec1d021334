"""`einsearch plot NAME -o FILE.png` and `einsearch report NAME -o DIR`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from einsearch.cli.common import DbOpt, app, console, fail
from einsearch.cli.store import opened_store


@app.command()
def plot(
    name: str = typer.Argument(..., help="The search's name."),
    out: Path = typer.Option(..., "--output", "-o", help="PNG file to write."),
    db: Optional[str] = DbOpt,
) -> None:
    """Best-so-far vs evaluations and vs wall time, and metric vs parameters with the Pareto front."""
    from einsearch.storage.plots import save_search_plot

    if out.suffix.lower() != ".png":
        fail(f"--output must be a .png file, got {str(out)!r}")
    if not out.parent.is_dir():
        fail(f"--output: directory {str(out.parent)!r} does not exist")
    with opened_store(db) as store:
        evals = store.evaluations(store.get_search(name).name)
    try:
        save_search_plot(name, evals, out)
    except ValueError as err:
        fail(str(err))
    except OSError as err:
        fail(f"--output: cannot write {str(out)!r}: {err.strerror or err}")
    console.print(f"wrote {out}", highlight=False)


@app.command()
def report(
    name: str = typer.Argument(..., help="The search's name."),
    out: Path = typer.Option(..., "--output", "-o", help="Directory to write index.html (and its plot) into."),
    top: int = typer.Option(20, "--top", "-k", help="Rows in the top table."),
    db: Optional[str] = DbOpt,
) -> None:
    """An HTML page of a search: its plots and its top architectures."""
    from einsearch.storage.report import write_report

    if out.exists() and not out.is_dir():
        fail(f"--output: {str(out)!r} exists and is not a directory")
    if top < 1:
        fail(f"--top must be at least 1, got {top}")
    with opened_store(db) as store:
        try:
            index = write_report(store, name, out, top=top)
        except ValueError as err:  # StoreError is one too (an unknown search)
            fail(str(err))
        except OSError as err:
            fail(f"--output: cannot write {str(err.filename or out)!r}: {err.strerror or err}")
    console.print(f"wrote {index}", highlight=False)
