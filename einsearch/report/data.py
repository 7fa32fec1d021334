"""What the interactive report shows, gathered from the store as plain values (no plotting here).

One `ReportData` per report: the searches compared, their successful evaluations with the facts a
reader compares (compact notation, params, decoding state, FLOPs, families), failures, lineage edges,
the primitives the top candidates share and, where an architecture was trained at several step
counts, the rank correlation between fidelities.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

from einsearch.report.facts import arch_facts, parsed
from einsearch.storage.records import EvaluationRecord, SearchRecord
from einsearch.storage.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Point:
    """One successful evaluation with everything a plot or a table row needs."""

    search: str
    evaluation: int
    arch_hash: str
    arch: str  # canonical string: the identity
    compact: str
    metric: float
    steps: int
    params: int | None
    state_size: int | None
    flops_per_token: int | None
    families: tuple[str, ...]
    ops: tuple[str, ...]
    baseline: str | None  # the baseline's name when the architecture is one of the library's
    order: int  # position among the search's finished evaluations (1-based)
    curve: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Failure:
    search: str
    evaluation: int
    arch_hash: str
    arch: str
    compact: str
    reason: str


@dataclass
class ReportData:
    searches: list[SearchRecord]
    metric: str
    higher_is_better: bool
    points: list[Point]  # every successful evaluation, in finishing order per search
    failures: list[Failure]
    edges: list[tuple[str, str, str, str]]  # (parent hash, child hash, op, search)
    top: int
    fidelity: list[dict[str, Any]] = field(default_factory=list)  # one entry per pair of step counts

    def best_per_arch(self) -> list[Point]:
        """Each (search, architecture)'s best evaluation at its highest step count, best first."""
        best: dict[tuple[str, str], Point] = {}
        for p in self.points:
            key = (p.search, p.arch_hash)
            if key not in best or self._better(p, best[key]):
                best[key] = p
        sign = 1 if self.higher_is_better else -1
        return sorted(best.values(), key=lambda p: (-p.steps, -sign * p.metric, p.params or 0, p.evaluation))

    def _better(self, a: Point, b: Point) -> bool:
        if a.steps != b.steps:
            return a.steps > b.steps
        return a.metric > b.metric if self.higher_is_better else a.metric < b.metric

    def leaders(self) -> list[Point]:
        return self.best_per_arch()[: self.top]


def curve_points(curve: Sequence[Any]) -> tuple[tuple[float, float], ...]:
    """(step, value) pairs from a stored curve: numbers, [step, value] pairs, or dicts with a value."""
    out = []
    for i, point in enumerate(curve):
        step, value = i + 1, None
        if isinstance(point, (int, float)):
            value = point
        elif isinstance(point, (list, tuple)) and len(point) >= 2:
            step, value = point[0], point[-1]
        elif isinstance(point, dict):
            step = point.get("step", i + 1)
            value = next((point[k] for k in ("metric", "value", "loss") if point.get(k) is not None), None)
        if isinstance(value, (int, float)) and isinstance(step, (int, float)):
            out.append((float(step), float(value)))
    return tuple(out)


@lru_cache(maxsize=4096)
def baseline_name(text: str) -> str | None:
    """The library baseline this canonical string is (at its width and depth), else None."""
    from einsearch.grammar import ArchError

    arch = parsed(text)
    if arch is None:
        return None
    stages = arch.root.children
    if len(stages) != 1 or stages[0].kind != "repeat":
        return None
    for template in _templates():
        if template.primitives() != set(arch.ops()):
            continue
        try:
            if str(template.render(arch.dim, stages[0].args[0])) == text:
                return template.name
        except (ArchError, KeyError, ValueError):
            continue
    return None


def _point(record: EvaluationRecord, order: int) -> Point:
    facts = arch_facts(record.arch, record.task)
    ops = tuple(sorted({n for n in _ops(record.arch)}))
    return Point(search=record.search or "-", evaluation=record.id, arch_hash=record.arch_hash, arch=record.arch,
                 compact=facts.compact, metric=float(record.metric), steps=record.steps,
                 params=record.params if record.params is not None else facts.params, state_size=facts.state_size,
                 flops_per_token=record.flops_per_token if record.flops_per_token is not None
                 else facts.flops_per_token, families=facts.families, ops=ops, baseline=baseline_name(record.arch),
                 order=order, curve=curve_points(record.curve))


def _ops(text: str) -> tuple[str, ...]:
    arch = parsed(text)
    return arch.ops() if arch is not None else ()


@lru_cache(maxsize=1)
def _templates() -> list:
    from einsearch.search.library import templates

    return templates()


def _finished(evals: Sequence[EvaluationRecord]) -> list[EvaluationRecord]:
    done = [e for e in evals if e.status == "ok" and e.metric is not None]
    return sorted(done, key=lambda e: (e.finished_at or e.created_at, e.id))


def _edges(store: Store, name: str, hashes: set[str]) -> list[tuple[str, str, str, str]]:
    out = set()
    for arch_hash in hashes:
        parents, _ = store.lineage(arch_hash)
        # a promotion to a higher fidelity (ASHA) is an edge to itself: not lineage
        out.update((e.parent_hash, e.child_hash, e.op, name) for e in parents
                   if e.search == name and e.parent_hash != e.child_hash)
    return sorted(out)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None below 3 points or without spread.
    The same estimator `einsearch fidelity` stores (`search.fidelity.spearman`)."""
    from einsearch.search.fidelity import MIN_PAIRS, spearman as rank_correlation

    return None if len(xs) < MIN_PAIRS else rank_correlation(xs, ys)


def fidelity_pairs(points: Sequence[Point]) -> list[dict[str, Any]]:
    """For each pair of step counts with at least 3 architectures trained at both: the metrics and
    their rank correlation. Empty when no architecture was trained at two fidelities."""
    by_steps: dict[int, dict[str, Point]] = {}
    for p in points:
        by_steps.setdefault(p.steps, {})[f"{p.search}/{p.arch_hash}"] = p
    steps = sorted(by_steps)
    out = []
    for i, low in enumerate(steps):
        for high in steps[i + 1:]:
            common = sorted(set(by_steps[low]) & set(by_steps[high]))
            if len(common) < 3:
                continue
            xs = [by_steps[low][k].metric for k in common]
            ys = [by_steps[high][k].metric for k in common]
            out.append({"low": low, "high": high, "x": xs, "y": ys, "rho": spearman(xs, ys),
                        "labels": [by_steps[high][k].compact for k in common],
                        "canonical": [by_steps[high][k].arch for k in common]})
    return out


def shared_primitives(leaders: Sequence[Point], everyone: Sequence[Point]) -> list[tuple[str, float, float]]:
    """(primitive or family, share of the top candidates using it, share of all candidates), most shared first."""
    def shares(group: Sequence[Point]) -> Counter:
        counts: Counter = Counter()
        for p in group:
            counts.update(set(p.ops) | {f"[{f}]" for f in p.families})
        return counts

    if not leaders:
        return []
    top, alls = shares(leaders), shares(everyone)
    rows = [(name, top[name] / len(leaders), alls[name] / max(1, len(everyone))) for name in top]
    return sorted(rows, key=lambda r: (-r[1], -(r[1] - r[2]), r[0]))


def block_pairs(leaders: Sequence[Point], limit: int = 8) -> list[tuple[str, int]]:
    """The most frequent consecutive block pairs ('attn → glu') among the top candidates."""
    from einsearch.grammar.compact import block_text

    counts: Counter = Counter()
    for p in leaders:
        arch = parsed(p.arch)
        if arch is None:
            continue
        root = arch.root
        blocks = [b for s in root.children for b in (s.children if s.kind == "repeat" else (s,))]
        names = [block_text(b) for b in blocks]
        counts.update({f"{a} → {b}" for a, b in zip(names, names[1:])})
    return counts.most_common(limit)


def gather(store: Store, names: Sequence[str], top: int = 20) -> ReportData:
    """The report's data for the searches `names` (the first one's metric and direction lead)."""
    searches = [store.get_search(name) for name in names]
    points: list[Point] = []
    failures: list[Failure] = []
    edges: list[tuple[str, str, str, str]] = []
    metric, higher = "metric", True
    for search in searches:
        evals = store.evaluations(search.name)
        done = _finished(evals)
        if done and metric == "metric":
            metric, higher = done[0].metric_name or "metric", done[0].higher_is_better
        points += [_point(e, i) for i, e in enumerate(done, start=1)]
        for e in evals:
            if e.status == "failed":
                failures.append(Failure(search.name, e.id, e.arch_hash, e.arch, arch_facts(e.arch, e.task).compact,
                                        (e.error or "no reason recorded").strip().splitlines()[0][:300]))
        edges += _edges(store, search.name, {e.arch_hash for e in evals})
    data = ReportData(searches, metric, higher, points, failures, edges, top)
    data.fidelity = fidelity_pairs(points)
    log.info("report data: %d evaluations, %d failures, %d lineage edges", len(points), len(failures), len(edges))
    return data
