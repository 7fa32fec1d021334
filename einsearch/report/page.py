"""`write_html_report`: one self-contained HTML file (plotly's bundle inlined: no network at view time)."""
from __future__ import annotations

import html
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from einsearch.report import figures
from einsearch.report.data import Point, ReportData, gather
from einsearch.report.summary import headline_of_points
from einsearch.storage.store import Store

log = logging.getLogger(__name__)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; max-width: 1500px; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; font-size: 0.85em; width: 100%; }
td, th { border-bottom: 1px solid #e4e4e4; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; cursor: pointer; user-select: none; white-space: nowrap; }
th.sorted-asc::after { content: " ▲"; } th.sorted-desc::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.arch { font-family: ui-monospace, monospace; word-break: break-word; }
tr.baseline td { background: #fff8e1; }
.facts { color: #555; } .facts span { margin-right: 1.2em; } .note { color: #777; font-style: italic; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
@media (max-width: 1100px) { .grid { grid-template-columns: 1fr; } }
"""

SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var asc = !th.classList.contains('sorted-asc');
      table.querySelectorAll('th').forEach(function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
      th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
        var nx = parseFloat(x), ny = parseFloat(y), cmp;
        if (!isNaN(nx) && !isNaN(ny)) { cmp = nx - ny; } else { cmp = String(x).localeCompare(String(y)); }
        return asc ? cmp : -cmp;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _cell(value: Any, text: str | None = None, cls: str = "num", title: str | None = None) -> str:
    sort = "" if value is None else value
    shown = text if text is not None else ("-" if value is None else str(value))
    tip = f' title="{_esc(title)}"' if title else ""
    return f'<td class="{cls}" data-sort="{_esc(sort)}"{tip}>{_esc(shown)}</td>'


def _leaderboard(data: ReportData) -> str:
    head = ["#", data.metric, "params", "state", "FLOPs/token", "families", "steps", "eval", "search", "hash",
            "architecture (hover: canonical string)"]
    rows = []
    for rank, p in enumerate(data.leaders(), start=1):
        cls = ' class="baseline"' if p.baseline else ""
        cells = [_cell(rank), _cell(p.metric, f"{p.metric:.4g}"), _cell(p.params, figures._num(p.params)),
                 _cell(p.state_size, figures._num(p.state_size)),
                 _cell(p.flops_per_token, figures._num(p.flops_per_token)),
                 _cell("+".join(p.families), cls="text"), _cell(p.steps), _cell(p.evaluation),
                 _cell(p.search, cls="text"), _cell(p.arch_hash, p.arch_hash[:12], cls="text"),
                 _cell(p.compact, p.compact + (f"   ← baseline {p.baseline}" if p.baseline else ""), cls="arch",
                       title=p.arch)]
        rows.append(f"<tr{cls} data-canonical=\"{_esc(p.arch)}\">{''.join(cells)}</tr>")
    header = "".join(f"<th>{_esc(h)}</th>" for h in head)
    return (f'<table class="sortable" id="leaderboard"><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _failures(data: ReportData) -> str:
    if not data.failures:
        return '<p class="note">no failed evaluations</p>'
    counts: dict[str, int] = {}
    for f in data.failures:
        counts[f.reason] = counts.get(f.reason, 0) + 1
    summary = "".join(f"<li>{n}× {_esc(reason)}</li>" for reason, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    rows = "".join(f"<tr>{_cell(f.evaluation)}{_cell(f.search, cls='text')}"
                   f"{_cell(f.compact, cls='arch', title=f.arch)}{_cell(f.reason, cls='text')}</tr>"
                   for f in data.failures[:200])
    return (f"<ul>{summary}</ul><table class=\"sortable\" id=\"failures\"><thead><tr><th>eval</th><th>search</th>"
            f"<th>architecture</th><th>reason</th></tr></thead><tbody>{rows}</tbody></table>")


def _headline(data: ReportData, search: str) -> str:
    """The search's best found against its best baseline (`report.summary`), one line each."""
    lines = headline_of_points(data.points, search, data.metric, data.higher_is_better).lines()
    return f'<div class="facts headline">{"<br>".join(_esc(line) for line in lines)}</div>'


def _figure(fig: Any, div_id: str, missing: str) -> str:
    if fig is None:
        return f'<p class="note" id="{div_id}-missing">{_esc(missing)}</p>'
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def render(data: ReportData) -> str:
    """The whole page as a string."""
    from plotly.offline import get_plotlyjs

    names = ", ".join(s.name for s in data.searches)
    facts = []
    for s in data.searches:
        mine = [p for p in data.points if p.search == s.name]
        failed = sum(f.search == s.name for f in data.failures)
        facts.append(f'<div class="facts"><b>{_esc(s.name)}</b> <span>task {_esc(s.task)}</span>'
                     f"<span>strategy {_esc(s.strategy)}</span><span>status {_esc(s.status)}</span>"
                     f"<span>{len(mine)} ok, {failed} failed of budget {_esc(s.budget)}</span>"
                     f"<span>seed {s.seed}</span><span>code {_esc(s.code_version)}</span></div>"
                     + _headline(data, s.name))
    winner: Point | None = data.leaders()[0] if data.leaders() else None
    sections = [
        ("Leaderboard", f"<p class=\"note\">best evaluation of each architecture, highest step count first; click a "
                        f"column to sort; hover an architecture for its canonical string (`einsearch show HASH`). "
                        f"Baselines are shaded.</p>{_leaderboard(data)}"),
        ("Pareto fronts", _figure(figures.pareto(data), "pareto", "no successful evaluations")),
        ("Best so far", _figure(figures.best_so_far_figure(data), "best-so-far", "no successful evaluations")),
        ("Learning curves", _figure(figures.learning_curves(data), "curves", "no learning curves recorded")),
        ("Lineage", _figure(figures.lineage(data), "lineage", "no lineage recorded (no mutation or crossover)")),
        ("The winner", (f"<p class=\"arch\"><code>{_esc(winner.compact)}</code></p>"
                        f"<p class=\"note\">{_esc(winner.arch)}</p>" if winner else "")
         + _figure(figures.block_diagram(winner) if winner else None, "winner", "no winner yet")),
        ("What the top candidates share", _figure(figures.shared_figure(data), "shared", "no successful evaluations")),
        ("Fidelity correlation", _figure(figures.fidelity_figure(data.fidelity), "fidelity",
                                         "not measured: no architecture was trained at two step counts")),
        (f"Failures ({len(data.failures)})", _failures(data)),
    ]
    body = "\n".join(f"<h2>{_esc(title)}</h2>\n{content}" for title, content in sections)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>einsearch report: {_esc(names)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>einsearch report: {_esc(names)}</h1>
<p class="note">{data.metric} ({'higher' if data.higher_is_better else 'lower'} is better); generated
{datetime.now():%Y-%m-%d %H:%M}; self-contained, works offline.</p>
{''.join(facts)}
{body}
<script>{SORT_JS}</script>
</body></html>
"""


def write_html_report(store: Store, names: Sequence[str], out: str | Path, top: int = 20) -> Path:
    """Write the interactive report of the searches `names` to the HTML file `out`; returns its path.
    ValueError (StoreError) for an unknown search."""
    if not names:
        raise ValueError("name at least one search")
    data = gather(store, names, top=top)
    path = Path(out)
    path.write_text(render(data), encoding="utf-8")
    log.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return path
