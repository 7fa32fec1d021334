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
    if headline.found is None or headline.baseline is None:
        return
    from einsearch.search.run import stored_config

    seeds = stored_config(store, name).train_seeds
    each = "one training seed each" if seeds == 1 else f"each the mean of {seeds} training seeds"
    # on recall tasks one seed can be a lucky draw
    console.print(f"{each}; `einsearch recheck {shlex.quote(name)}` trains the best on more seeds",
                  markup=False, highlight=False, soft_wrap=True)
