"""The report's plotly figures, each a function of `ReportData` (plain SVG scatter traces, not WebGL,
so that a headless browser renders and hovers them like any other)."""
from __future__ import annotations

import math
import textwrap
from typing import Sequence

import networkx as nx
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from einsearch.grammar.tree import Node
from einsearch.report.data import Point, ReportData, block_pairs, shared_primitives
from einsearch.storage.plots import best_so_far, pareto_front

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
FAMILY_COLOURS = {"attn": "#4c78a8", "rec": "#f58518", "ssm": "#54a24b", "conv": "#b279a2", "tokmlp": "#9d755d",
                  "composed": "#e45756", "ffn": "#bab0ac", "moe": "#72b7b2"}
LAYOUT = dict(template="plotly_white", hovermode="closest", margin=dict(l=60, r=20, t=50, b=50),
              hoverlabel=dict(align="left"))


def wrap(text: str, width: int = 90) -> str:
    """A long canonical string broken into hover lines (at spaces, so nothing is lost)."""
    return "<br>".join(textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False))


def _hover(p: Point, metric: str) -> str:
    lines = [f"<b>{p.compact}</b>", f"{metric} {p.metric:.4g} at {p.steps} steps   (evaluation {p.evaluation}, "
             f"search {p.search})", f"params {_num(p.params)}   state {_num(p.state_size)}   "
             f"FLOPs/token {_num(p.flops_per_token)}"]
    if p.baseline:
        lines.append(f"baseline: {p.baseline}")
    return "<br>".join(lines) + "<br>" + wrap(p.arch)


def _num(value: int | None) -> str:
    if value is None:
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return str(value)


def pareto(data: ReportData) -> go.Figure:
    """Metric vs parameters and vs decoding-state size; the Pareto front of each; baselines as stars."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("metric vs parameters", "metric vs decoding state"),
                        horizontal_spacing=0.08)
    best = data.best_per_arch()
    for col, attr in ((1, "params"), (2, "state_size")):
        for i, search in enumerate(data.searches):
            mine = [p for p in best if p.search == search.name and getattr(p, attr) is not None]
            colour = PALETTE[i % len(PALETTE)]
            plain = [p for p in mine if not p.baseline]
            for group, symbol, size, suffix in ((plain, "circle", 8, ""),
                                                ([p for p in mine if p.baseline], "star", 15, " baselines")):
                if not group:
                    continue
                fig.add_trace(go.Scatter(
                    x=[max(getattr(p, attr), 1) for p in group], y=[p.metric for p in group], mode="markers",
                    marker=dict(symbol=symbol, size=size, color=colour, line=dict(width=1, color="#333")),
                    name=f"{search.name}{suffix}", legendgroup=f"{search.name}{suffix}", showlegend=col == 1,
                    hovertext=[_hover(p, data.metric) for p in group], hoverinfo="text",
                    customdata=[p.arch for p in group]), row=1, col=col)
            front = pareto_front([(getattr(p, attr), p.metric) for p in mine], data.higher_is_better)
            if len(front) > 1:
                fig.add_trace(go.Scatter(x=[max(getattr(mine[j], attr), 1) for j in front],
                                         y=[mine[j].metric for j in front], mode="lines", hoverinfo="skip",
                                         line=dict(shape="hv", color=colour, dash="dot"), showlegend=False),
                              row=1, col=col)
        fig.update_xaxes(type="log", title_text="parameters" if col == 1 else "decoding state (numbers per "
                         "sequence; +1 for stateless)", row=1, col=col)
    fig.update_yaxes(title_text=data.metric, row=1, col=1)
    fig.update_layout(height=460, legend=dict(orientation="h", y=-0.2), **LAYOUT)
    return fig


def best_so_far_figure(data: ReportData) -> go.Figure:
    fig = go.Figure()
    for i, search in enumerate(data.searches):
        mine = [p for p in data.points if p.search == search.name]
        if not mine:
            continue
        colour = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=[p.order for p in mine], y=best_so_far([p.metric for p in mine],
                                                                          data.higher_is_better),
                                 mode="lines", line=dict(shape="hv", color=colour, width=3), name=search.name,
                                 hoverinfo="x+y+name"))
        fig.add_trace(go.Scatter(x=[p.order for p in mine], y=[p.metric for p in mine], mode="markers",
                                 marker=dict(color=colour, size=5, opacity=0.4), name=f"{search.name} evaluations",
                                 hovertext=[_hover(p, data.metric) for p in mine], hoverinfo="text",
                                 showlegend=False))
    direction = "higher" if data.higher_is_better else "lower"
    fig.update_layout(title=f"best so far ({direction} {data.metric} is better)", height=380,
                      xaxis_title="evaluations finished", yaxis_title=data.metric, **LAYOUT)
    return fig


def learning_curves(data: ReportData, count: int = 8) -> go.Figure | None:
    leaders = [p for p in data.best_per_arch() if p.curve][:count]
    if not leaders:
        return None
    fig = go.Figure()
    for i, p in enumerate(leaders):
        fig.add_trace(go.Scatter(x=[s for s, _ in p.curve], y=[v for _, v in p.curve], mode="lines+markers",
                                 marker=dict(size=4), name=f"#{i + 1} {p.compact[:40]}",
                                 hovertext=[_hover(p, data.metric)] * len(p.curve), hoverinfo="text+y"))
    fig.update_layout(title=f"learning curves of the top {len(leaders)}", height=400, xaxis_title="step",
                      yaxis_title="value recorded", legend=dict(font=dict(size=10)), **LAYOUT)
    return fig


def lineage(data: ReportData) -> go.Figure | None:
    """Parent -> child edges, laid out by generation (networkx multipartite layout), coloured by metric."""
    if not data.edges:
        return None
    graph = nx.DiGraph()
    graph.add_edges_from((a, b, {"op": op}) for a, b, op, _ in data.edges)
    best = {p.arch_hash: p for p in reversed(data.best_per_arch())}
    for node in graph:
        ancestors = nx.ancestors(graph, node)
        graph.nodes[node]["layer"] = max((nx.shortest_path_length(graph, a, node) for a in ancestors), default=0)
    pos = nx.multipartite_layout(graph, subset_key="layer", align="horizontal", scale=1)
    ex, ey = [], []
    for a, b in graph.edges:
        ex += [pos[a][0], pos[b][0], None]
        ey += [-pos[a][1], -pos[b][1], None]
    nodes = list(graph)
    metrics = [best[n].metric if n in best else None for n in nodes]
    fig = go.Figure([go.Scatter(x=ex, y=ey, mode="lines", line=dict(color="#bbb", width=1), hoverinfo="skip",
                                showlegend=False),
                     go.Scatter(x=[pos[n][0] for n in nodes], y=[-pos[n][1] for n in nodes], mode="markers",
                                marker=dict(size=11, color=[m if m is not None else math.nan for m in metrics],
                                            colorscale="Viridis", showscale=True, line=dict(width=1, color="#333"),
                                            colorbar=dict(title=data.metric)),
                                hovertext=[_hover(best[n], data.metric) if n in best else f"{n} (not finished)"
                                           for n in nodes], hoverinfo="text", showlegend=False)])
    fig.update_layout(title=f"lineage: {graph.number_of_nodes()} architectures, {graph.number_of_edges()} "
                      "mutations/crossovers (parents above children)", height=460,
                      xaxis=dict(visible=False), yaxis=dict(visible=False), **LAYOUT)
    return fig


def _blocks(root: Node) -> list[tuple[str, Node]]:
    out = []
    for stage in root.children:
        if stage.kind == "repeat":
            out += [(f"×{stage.args[0]}", b) for b in stage.children]
        else:
            out.append(("", stage))
    return out


def block_diagram(p: Point) -> go.Figure | None:
    """The winner drawn bottom-up: one box per block (parallel branches side by side), repeats marked."""
    from einsearch.grammar.compact import block_prefix, layer_text
    from einsearch.report.facts import families, parsed
    from einsearch.grammar.tree import to_text

    arch = parsed(p.arch)
    if arch is None:
        return None
    root = arch.root
    fig = go.Figure()
    blocks = _blocks(root)
    xs, ys, texts, hovers = [], [], [], []
    for row, (repeat, block) in enumerate(blocks):
        layer = block.children[0]
        parts = list(layer.children) if layer.kind == "parallel" else [layer]
        width = 1.0 / len(parts)
        for j, part in enumerate(parts):
            label = layer_text(part)
            family = (families(f"net({root.args[0]}, block(pre:rms, {to_text(part)}))") or ("ffn",))[0]
            x0, x1 = j * width + 0.02, (j + 1) * width - 0.02
            fig.add_shape(type="rect", x0=x0, x1=x1, y0=row + 0.1, y1=row + 0.9, line=dict(color="#333"),
                          fillcolor=FAMILY_COLOURS.get(family, "#ddd"), opacity=0.55, layer="below")
            xs.append((x0 + x1) / 2), ys.append(row + 0.5), texts.append(label[:60])
            hovers.append(f"block {row + 1} {repeat}<br>{wrap(to_text(block))}")
        side = f"{repeat} {block_prefix(*block.args).rstrip(':') or 'pre-rms'}".strip()
        fig.add_annotation(x=-0.02, y=row + 0.5, text=side, showarrow=False, xanchor="right", font=dict(size=11))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="text", text=texts, hovertext=hovers, hoverinfo="text",
                             textfont=dict(color="#111", size=12), showlegend=False))
    fig.update_layout(title=f"winner, width {root.args[0]} (input at the bottom; each box is a residual block; "
                      "hover for its canonical form)", height=max(260, 44 * len(blocks) + 100),
                      xaxis=dict(visible=False, range=[-0.25, 1.02]), yaxis=dict(visible=False),
                      **LAYOUT)
    return fig


def shared_figure(data: ReportData) -> go.Figure | None:
    rows = shared_primitives(data.leaders(), data.best_per_arch())[:20]
    if not rows:
        return None
    names = [r[0] for r in rows]
    fig = go.Figure([go.Bar(x=names, y=[r[1] for r in rows], name=f"top {len(data.leaders())}"),
                     go.Bar(x=names, y=[r[2] for r in rows], name="all candidates", opacity=0.6)])
    pairs = block_pairs(data.leaders())
    note = "<br>".join(f"{n}× {pair}" for pair, n in pairs[:5])
    fig.update_layout(title="what the top candidates share: primitives and [families], share of architectures",
                      barmode="group", height=420, yaxis=dict(tickformat=".0%"), **LAYOUT)
    if note:
        fig.add_annotation(xref="paper", yref="paper", x=1, y=1, xanchor="right", yanchor="top", showarrow=False,
                           align="left", bgcolor="rgba(255,255,255,0.85)",
                           text=f"<b>frequent consecutive blocks</b><br>{note}", font=dict(size=11))
    return fig


def fidelity_figure(pairs: Sequence[dict]) -> go.Figure | None:
    if not pairs:
        return None
    fig = go.Figure()
    for i, pair in enumerate(pairs):
        rho = "n/a" if pair["rho"] is None else f"{pair['rho']:.2f}"
        fig.add_trace(go.Scatter(x=pair["x"], y=pair["y"], mode="markers", marker=dict(size=8,
                                 color=PALETTE[i % len(PALETTE)]),
                                 name=f"{pair['low']} vs {pair['high']} steps: Spearman {rho} (n={len(pair['x'])})",
                                 hovertext=[f"<b>{c}</b><br>{wrap(t)}" for c, t in zip(pair["labels"],
                                                                                      pair["canonical"])],
                                 hoverinfo="text+x+y"))
    fig.update_layout(title="fidelity: metric at fewer steps vs at more steps (same architecture)", height=400,
                      xaxis_title="metric at the lower fidelity", yaxis_title="metric at the higher fidelity",
                      **LAYOUT)
    return fig
