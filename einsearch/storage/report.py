"""An HTML report of one search: its plots and its top table, in one directory (index.html + PNG)."""
from __future__ import annotations

import html
from pathlib import Path

from einsearch.storage.plots import save_search_plot
from einsearch.storage.store import Store

COLUMNS = ("rank", "value", "params", "steps", "seed", "evaluation", "arch_hash", "arch")


def write_report(store: Store, name: str, out_dir: str | Path, top: int = 20) -> Path:
    """Write `out_dir/index.html` (and `search.png`) for search `name`; returns the HTML file's path."""
    search = store.get_search(name)
    evals = store.evaluations(name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_search_plot(name, evals, out / "search.png")
    rows = [row.to_dict() for row in store.leaderboard(search=name, top=top)]
    metric = rows[0]["metric"] if rows else "metric"
    counts = {status: sum(e.status == status for e in evals) for status in ("ok", "failed", "running")}

    def cell(value: object) -> str:
        text = f"{value:.6g}" if isinstance(value, float) else "" if value is None else str(value)
        return f"<td>{html.escape(text)}</td>"

    header = "".join(f"<th>{html.escape(metric if c == 'value' else c)}</th>" for c in COLUMNS)
    body = "\n".join("<tr>" + "".join(cell(row[c]) for c in COLUMNS) + "</tr>" for row in rows)
    facts = {"task": search.task, "strategy": search.strategy, "seed": search.seed, "status": search.status,
             "budget": search.budget, "evaluations": len(evals), **counts, "code version": search.code_version,
             "created": search.created_at.isoformat(timespec="seconds")}
    facts_html = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in facts.items())
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>einsearch: {html.escape(name)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }}
td:last-child {{ font-family: monospace; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>search {html.escape(name)}</h1>
<ul>{facts_html}</ul>
<img src="search.png" alt="best so far vs evaluations and wall time; metric vs parameters with the Pareto front">
<h2>top {len(rows)} architectures</h2>
<table><tr>{header}</tr>
{body}
</table>
</body></html>
"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
