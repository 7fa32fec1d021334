"""The table of ranked architectures that `leaderboard` and the end of `search` print: compact
notation, folded but never cut, with the columns a researcher compares (parameters, decoding state,
FLOPs per token, mixer families). On a narrow terminal the secondary columns give way to it."""
from __future__ import annotations

from typing import Any, Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from einsearch.cli.common import console

WIDE = 150  # terminal columns from which every column is shown
# (header, row key, shown when narrow)
COLUMNS = (("#", "rank", True), ("METRIC", "value", True), ("params", "params", True), ("state", "state_size", True),
           ("FLOPs", "flops_per_token", False), ("families", "families", False), ("steps", "steps", False),
           ("eval", "evaluation", False), ("hash", "arch_hash", True), ("search", "search", False))


def _cell(key: str, value: Any) -> str:
    from einsearch.cli.common import clip, short

    if key == "families":
        return "+".join(value or ()) or "-"
    if key == "arch_hash":
        return str(value)[:12]
    if key == "search":
        return clip(value or "-", 12)
    return short(value)


def arch_table(rows: Sequence[dict[str, Any]], *, title: str, metric: str, caption: str = "") -> Table:
    """`rows`: dicts with the keys of COLUMNS (missing ones shown as '-') and 'compact'."""
    wide = console.width >= WIDE
    shown = [(header, key) for header, key, narrow in COLUMNS if wide or narrow]
    if any(row.get("lr") is not None for row in rows):  # searched over an --lr-grid: the rate each one won at
        shown.insert(2, ("lr", "lr"))
    hint = "hash: its first 12 digits; `einsearch show HASH` gives the canonical string. state: decoding state " \
           "per sequence" + ("; FLOPs per token" if wide else "; a wider terminal or --format json shows FLOPs, "
                             "families, steps")
    table = Table(title=title, box=box.SIMPLE_HEAD, caption=f"{caption}{'; ' if caption else ''}{hint}")
    for header, _ in shown:
        table.add_column(metric if header == "METRIC" else header, no_wrap=True)
    table.add_column("architecture", overflow="fold", min_width=24)  # compact notation: folded, never cut
    for row in rows:
        table.add_row(*[Text(_cell(key, row.get(key))) for _, key in shown], Text(row.get("compact") or "-"))
    return table
