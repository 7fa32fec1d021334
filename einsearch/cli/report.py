"""`einsearch plot NAME -o FILE.png` and `einsearch report NAME [NAME ...] [-o report.html]`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from einsearch.cli.common import DbOpt, app, console, fail, opened_store


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
    names: list[str] = typer.Argument(..., metavar="SEARCH...", help="The search(es): several are overlaid for "
                                      "comparison."),
    out: Path = typer.Option(Path("report.html"), "--output", "--out", "-o",
                             help="HTML file to write (a directory: DIR/index.html)."),
    compare: Optional[list[str]] = typer.Option(None, "--compare", "-c", help="Another search to overlay "
                                                "(repeat for several); the same as naming it after the first."),
    top: int = typer.Option(20, "--top", "-k", help="Rows in the leaderboard."),
    png: bool = typer.Option(False, "--png", help="Also the static PNG of the first search (best so far and "
                             "the Pareto front) beside the HTML file."),
    db: Optional[str] = DbOpt,
) -> None:
    """One self-contained interactive HTML file (works offline): leaderboard, Pareto fronts, best so far,
    learning curves, lineage, the winner's blocks, shared primitives, fidelity correlation, failures."""
    from einsearch.report import write_html_report
    from einsearch.storage.plots import save_search_plot

    searches = list(dict.fromkeys([*names, *(compare or [])]))
    if out.is_dir() or not out.suffix:
        out = out / "index.html"
    elif out.suffix.lower() not in (".html", ".htm"):
        fail(f"--output must be an .html file or a directory, got {str(out)!r}")
    if not out.parent.is_dir() and (out.name != "index.html" or out.parent.exists()):
        fail(f"--output: directory {str(out.parent)!r} does not exist")
    if top < 1:
        fail(f"--top must be at least 1, got {top}")
    with opened_store(db) as store:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            path = write_html_report(store, searches, out, top=top)
            if png:
                picture = save_search_plot(searches[0], store.evaluations(searches[0]), out.with_suffix(".png"))
                console.print(f"wrote {picture}", highlight=False)
        except OSError as err:
            fail(f"--output: cannot write {str(err.filename or out)!r}: {err.strerror or err}")
    console.print(f"wrote {path}", highlight=False)
