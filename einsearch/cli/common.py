"""Shared CLI pieces: the typer app, the console, options every command spells the same way."""
from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from einsearch.errors import EinsearchError

if TYPE_CHECKING:
    from einsearch.storage import Store


class _Commands(TyperGroup):
    """Runs every command with the one error handler: the project's own errors, and files that
    cannot be read or written, end the command with one line and the error's exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except EinsearchError as err:
            fail(str(err), err.exit_code)
        except OSError as err:  # a path given on the command line: unwritable, missing, a directory
            where = f"{err.filename}: " if getattr(err, "filename", None) else ""
            fail(f"{where}{err.strerror or err}")


app = typer.Typer(
    name="einsearch",
    cls=_Commands,
    help="Neural architecture search over a grammar of sequence models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

DEFAULT_DB = "sqlite:///einsearch.db"


def default_db() -> str:
    return os.environ.get("EINSEARCH_DB", DEFAULT_DB)


# Options shared by many commands: same name, same meaning everywhere.
TaskOpt = typer.Option("toy-causal", "--task", "-t", help="Task name or spec, e.g. 'mqar:seq=64,pairs=4'.")
SeedOpt = typer.Option(0, "--seed", help="Random seed.")
JsonOpt = typer.Option(False, "--json", help="One JSON object per line instead of a table.")
MaxParamsOpt = typer.Option(None, "--max-params", help="Parameter budget (e.g. 2e6).")
DbOpt = typer.Option(None, "--db", help="Database URL (default: $EINSEARCH_DB or sqlite:///einsearch.db).")


def fail(message: str, code: int = 2) -> NoReturn:
    """One clear line on stderr, then exit with `code` (2: bad input)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=False) + "\n")


def parse_count(text: str | None, what: str) -> int | None:
    """'2e6', '2000000', '2M' -> int; None stays None."""
    if text is None:
        return None
    scale = {"k": 1e3, "m": 1e6, "g": 1e9}.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if scale != 1 else text) * scale
    except ValueError:
        fail(f"{what}: {text!r} is not a number")
    if value <= 0:
        fail(f"{what}: must be positive, got {text!r}")
    return int(value)


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


@contextmanager
def opened_store(db: str | None, create: bool = False) -> Iterator["Store"]:
    """The store at `db` (default: $EINSEARCH_DB or ./einsearch.db), which must exist unless `create`;
    every command opens its store here. A database problem ends the command with one line, exit 2."""
    from sqlalchemy.exc import SQLAlchemyError

    from einsearch.storage import Store

    try:
        with Store.open(db or default_db(), create=create) as store:
            yield store
    except SQLAlchemyError as err:
        first = str(getattr(err, "orig", None) or err).strip().splitlines()
        fail(f"database error: {first[0] if first else type(err).__name__}")
