"""Plots of a search: best-so-far against evaluations and against wall time, and metric against
parameters with the Pareto front marked. matplotlib's object API (no pyplot state), rendered by Agg."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure

from einsearch.storage.records import EvaluationRecord


def best_so_far(values: Sequence[float], higher_is_better: bool) -> list[float]:
    out: list[float] = []
    for value in values:
        better = not out or (value > out[-1] if higher_is_better else value < out[-1])
        out.append(value if better else out[-1])
    return out


def pareto_front(points: Sequence[tuple[int, float]], higher_is_better: bool) -> list[int]:
    """Indices of the (params, metric) points no other point beats on both (fewer params, better metric),
    ordered by params."""
    sign = 1.0 if higher_is_better else -1.0
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -sign * points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if sign * points[i][1] > best:
            front.append(i)
            best = sign * points[i][1]
    return front


def _finished(evals: Sequence[EvaluationRecord]) -> list[EvaluationRecord]:
    done = [e for e in evals if e.status == "ok" and e.metric is not None]
    return sorted(done, key=lambda e: (e.finished_at or e.created_at, e.id))


def search_figure(name: str, evals: Sequence[EvaluationRecord]) -> Figure:
    """Three panels for the search `name` from its evaluations; ValueError if none succeeded."""
    done = _finished(evals)
    if not done:
        raise ValueError(f"search {name!r} has no successful evaluations to plot")
    higher = done[0].higher_is_better
    metric_name = done[0].metric_name or "metric"
    values = [e.metric for e in done]
    best = best_so_far(values, higher)
    start = min(e.created_at for e in evals)
    elapsed = [((e.finished_at or e.created_at) - start).total_seconds() for e in done]

    fig = Figure(figsize=(15, 4.5), layout="constrained")
    by_count, by_time, scatter = fig.subplots(1, 3)
    by_count.plot(range(1, len(done) + 1), values, ".", alpha=0.4, label="evaluation")
    by_count.step(range(1, len(done) + 1), best, where="post", label="best so far")
    by_count.set(xlabel="evaluations finished", ylabel=metric_name, title="best so far vs evaluations")
    by_count.legend(loc="best")
    by_time.step(elapsed, best, where="post")
    by_time.set(xlabel="wall time since start (s)", ylabel=metric_name, title="best so far vs wall time")

    with_params = [e for e in done if e.params is not None]
    if with_params:
        points = [(e.params, e.metric) for e in with_params]
        front = pareto_front(points, higher)
        scatter.scatter([p for p, _ in points], [m for _, m in points], s=14, alpha=0.5, label="architectures")
        scatter.step([points[i][0] for i in front], [points[i][1] for i in front], "-o", where="post", color="C3",
                     markersize=5, label="Pareto front")
        scatter.set_xscale("log")
        scatter.legend(loc="best")
    scatter.set(xlabel="parameters", ylabel=metric_name, title="metric vs parameters")
    fig.suptitle(f"search {name}: {len(done)} successful of {len(evals)} evaluations "
                 f"({'higher' if higher else 'lower'} {metric_name} is better)")
    return fig


def save_search_plot(name: str, evals: Sequence[EvaluationRecord], path: str | Path) -> Path:
    path = Path(path)
    search_figure(name, evals).savefig(path, dpi=100)
    return path
