"""The best found architecture against the best baseline, printed under a search's top table."""
from __future__ import annotations

from typing import Any

from einsearch.cli.common import console


def print_headline(store: Any, name: str) -> None:
    """Print `report.summary.search_headline` of the search `name` (plain text: the compact notation has brackets)."""
    from einsearch.report.summary import search_headline

    for line in search_headline(store, name).lines():
        console.print(line, markup=False, highlight=False, soft_wrap=True)
