"""The best found architecture against the best baseline, printed under a search's top table."""
from __future__ import annotations

import shlex
from typing import Any

from einsearch.cli.common import console


def print_headline(store: Any, name: str) -> None:
    """Print `report.summary.search_headline` of the search `name` (plain text: the compact notation has brackets)."""
    from einsearch.report.summary import search_headline

    headline = search_headline(store, name)
    for line in headline.lines():
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if headline.found is not None and headline.baseline is not None:  # on recall tasks one seed can be a lucky draw
        console.print(f"one training seed each; `einsearch recheck {shlex.quote(name)}` trains the best on more seeds",
                      markup=False, highlight=False, soft_wrap=True)
