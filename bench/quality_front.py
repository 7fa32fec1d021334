"""Pure helpers of bench/search_quality.py: a search's results as (accuracy, decoding state, parameters)
points, their Pareto front, the issue's aim checked against the baselines, best-so-far curves.

No training and no store here, so tests can feed made-up points."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from einsearch.search.pareto import dominates, pareto_front


@dataclass(frozen=True)
class Point:
    evaluation: int
    arch: str  # canonical string
    compact: str
    metric: float  # accuracy (higher is better)
    state: int  # decoding-state floats per sequence at the task's length
    params: int
    baseline: str | None  # the library baseline's name, None for a found architecture

    @property
    def objectives(self) -> tuple[float, float, float]:
        """To maximise: accuracy, minus state, minus parameters."""
        return (self.metric, -float(self.state), -float(self.params))

    @property
    def label(self) -> str:
        return self.baseline or "found"


def points_from_records(records: Iterable, task: str) -> list[Point]:
    """One point per distinct architecture with a metric (its best run), from store evaluation records;
    state and parameters from the project's `check` (via `arch_facts`), the baseline name from the library."""
    from einsearch.report.data import baseline_name
    from einsearch.report.facts import arch_facts

    best: dict[str, Point] = {}
    for r in records:
        if r.status != "ok" or r.metric is None:
            continue
        facts = arch_facts(r.arch, task)
        if facts.state_size is None or (facts.params is None and r.params is None):
            continue
        point = Point(r.id, r.arch, facts.compact, float(r.metric), int(facts.state_size),
                      int(r.params if r.params is not None else facts.params), baseline_name(r.arch))
        if r.arch not in best or point.metric > best[r.arch].metric:
            best[r.arch] = point
    return sorted(best.values(), key=lambda p: p.evaluation)


def front(points: Sequence[Point]) -> list[Point]:
    """The non-dominated points on (accuracy, state, params), sorted by accuracy then state."""
    kept = [p for p, _ in pareto_front([(p, p.objectives) for p in points])]
    return sorted(kept, key=lambda p: (-p.metric, p.state, p.params))


def dominated_by_baseline(point: Point, points: Sequence[Point]) -> bool:
    return any(b.baseline and dominates(b.objectives, point.objectives) for b in points)


@dataclass(frozen=True)
class Aim:
    reference: Point | None  # the smallest-state baseline reaching the threshold
    smaller: list[Point]  # found, >= threshold, less state than `reference`, no baseline dominates it
    best_baseline: Point | None  # the most accurate baseline
    more_accurate: list[Point]  # found, more accurate than every baseline, no baseline dominates it

    @property
    def met(self) -> bool:
        """Where a baseline reaches the threshold, only less state counts (an accuracy above the best baseline's
        0.99+ is within one training seed's noise); where none does (a harder setting), higher accuracy counts."""
        return bool(self.smaller) if self.reference is not None else bool(self.more_accurate)


def check_aim(points: Sequence[Point], threshold: float = 0.99) -> Aim:
    """The issue's aim: a found architecture that no baseline dominates and that reaches `threshold` with
    less state than the smallest-state baseline reaching it, or, on a setting where no baseline reaches
    `threshold` (a harder one), that is more accurate than every baseline."""
    bases = [p for p in points if p.baseline]
    found = [p for p in points if not p.baseline and not dominated_by_baseline(p, points)]
    solving = [b for b in bases if b.metric >= threshold]
    reference = min(solving, key=lambda b: (b.state, b.params)) if solving else None
    smaller = [p for p in found if reference is not None and p.metric >= threshold and p.state < reference.state]
    best_base = max(bases, key=lambda b: b.metric) if bases else None
    better = [p for p in found if best_base is not None and p.metric > best_base.metric]
    return Aim(reference, sorted(smaller, key=lambda p: p.state), best_base,
               sorted(better, key=lambda p: -p.metric))


def aim_lines(aim: Aim, threshold: float, where: str) -> list[str]:
    """The aim's verdict lines; `where` says on what the accuracies are, e.g. "on the mean of 3 training seeds"."""
    out = []
    if aim.reference is not None:
        r = aim.reference
        out.append(f"Smallest-state baseline reaching {threshold}: {r.baseline} (e{r.evaluation}), accuracy "
                   f"{r.metric:.3f}, state {r.state:,}, params {r.params:,}.")
        out.append(f"Found, not dominated by a baseline, accuracy >= {threshold} with less state: "
                   + (", ".join(f"e{p.evaluation} ({p.metric:.3f}, state {p.state:,}, params {p.params:,})"
                                for p in aim.smaller) or "none") + ".")
    else:
        out.append(f"No baseline reaches {threshold} here.")
    if aim.best_baseline is not None:
        b = aim.best_baseline
        counts = "" if aim.reference is None else f" (not the aim where a baseline reaches {threshold})"
        out.append(f"Most accurate baseline: {b.baseline} (e{b.evaluation}), {b.metric:.3f}. Found, not dominated "
                   f"by a baseline, more accurate than every baseline{counts}: "
                   + (", ".join(f"e{p.evaluation} ({p.metric:.3f})" for p in aim.more_accurate) or "none") + ".")
    out.append(f"**Aim {'met' if aim.met else 'not met'}** {where}.")
    return out


def front_table(points: Sequence[Point]) -> list[str]:
    """A markdown table of the Pareto front (compact strings; the canonical ones go in a list)."""
    lines = ["| eval | baseline | accuracy | decoding state | params | architecture |", "|---|---|---|---|---|---|"]
    for p in front(points):
        shown = p.compact.replace("|", "\\|")
        lines.append(f"| e{p.evaluation} | {p.label} | {p.metric:.3f} | {p.state:,} | {p.params:,} | `{shown}` |")
    return lines


def best_so_far(values: Sequence[float | None]) -> list[float]:
    """The best metric after each evaluation (a failure, None, keeps the previous best; -inf before any)."""
    out, best = [], float("-inf")
    for v in values:
        if v is not None and v > best:
            best = v
        out.append(best)
    return out


def first_reaching(curve: Sequence[float], threshold: float) -> int | None:
    """The 1-based evaluation after which a best-so-far curve first reaches `threshold`; None if never."""
    return next((i for i, best in enumerate(curve, 1) if best >= threshold), None)


def compare(a: float, b: float, within: float = 0.005) -> str:
    """'beats', 'matches' (within `within` of b: one training seed moves a solved MQAR about this much)
    or 'does not beat'."""
    return "matches" if abs(a - b) <= within else "beats" if a > b else "does not beat"


def combined(timings: list[str]) -> str:
    """Several searches' timing lines (as `search` writes them) as one: first start, last end, summed wall."""
    minutes = sum(float(m) for t in timings for m in re.findall(r"([\d.]+) min wall", t))
    starts = [re.match(r"(.*?); load average \(1, 5, 15 min\) ([\d. ]+) at the start", t) for t in timings]
    ends = [re.search(r"and ([\d. ]+) at the end", t) for t in timings]
    if not timings or not all(starts) or not all(ends):
        return f"{minutes:.1f} min wall in all (some runs' times not recorded)"
    return (f"{starts[0].group(1)}; load average (1, 5, 15 min) {starts[0].group(2)} at the start and "
            f"{ends[-1].group(1)} at the end; {len(timings)} searches, {minutes:.1f} min wall in all")
