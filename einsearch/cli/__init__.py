"""The `einsearch` command line. Each module in this package adds its commands to `app`.

Commands are thin: parse options, call the library, render with rich. Bad input ends with one
line on stderr and exit code 2 (see `common.fail`).
"""
from __future__ import annotations

import importlib
import logging
import pkgutil

from einsearch.cli.common import app


def _load_commands() -> None:
    import einsearch.cli as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name not in ("common", "__main__"):
            importlib.import_module(f"einsearch.cli.{info.name}")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _load_commands()
    app()


__all__ = ["app", "main"]
