"""A search's headline: its best new architecture against its best baseline, on the metric, parameters
and decoding-state size (the `search` command, the demo and the HTML report print it).

A result counts as a baseline when its architecture is one of the library's templates at some width
and depth (`report.data.baseline_name`): that covers every candidate seeded with `--seed-with` (a
seeded candidate is emitted with op "baseline" but has no parents, so the store records no lineage
edge for it) and a mutation that happens to land on a known architecture, which is no discovery
either. Everything else the search trained is "found".

Each side's best is its result at the highest step count it reached (a multi-fidelity search's low
budgets are not compared with full ones), then the best metric; equal metrics go to the smaller
decoding state, then to fewer parameters.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable

from einsearch.report.data import baseline_name
from einsearch.report.facts import arch_facts

log = logging.getLogger(__name__)
# A metric difference this small (relative) is called a match, not a win: once solved, one training
# seed moves MQAR accuracy by about this much (bench/RESULTS.md, "Trainer reference").
SAME_WITHIN = 0.005


@dataclass(frozen=True)
class Entry:
    """One evaluated architecture as the headline shows it."""

    evaluation: int
    arch: str  # canonical string
    compact: str
    metric: float
    steps: int
    params: int | None
    state_size: int | None  # decoding state per sequence at the task's length, in floats
    baseline: str | None  # the library baseline's name, None for a found architecture


@dataclass(frozen=True)
class Headline:
    """The best found and the best baseline of one search (either may be None)."""

    search: str
    metric_name: str
    higher_is_better: bool
    found: Entry | None
    baseline: Entry | None
    n_found: int  # distinct found architectures with a result
    n_baselines: int  # distinct baselines with a result

    def lines(self) -> list[str]:
        """Plain text (no markup): one line per side, then the comparison."""
        out = [_entry_line("best found   ", self.found, self.metric_name, "no new architecture finished"),
               _entry_line("best baseline", self.baseline, self.metric_name, "no baseline finished")]
        if self.found is not None and self.baseline is not None:
            out.append(self.verdict())
        return out

    def verdict(self) -> str:
        """'found vs baseline: accuracy +0.012, params 0.84x, decoding state 0.57x' and which side wins
        (a match when the metrics differ by at most SAME_WITHIN of the baseline's)."""
        found, base = self.found, self.baseline
        assert found is not None and base is not None
        delta = found.metric - base.metric
        better = delta > 0 if self.higher_is_better else delta < 0
        parts = [f"{self.metric_name} {delta:+.3f}", f"params {_ratio(found.params, base.params)}",
                 f"decoding state {_ratio(found.state_size, base.state_size)}"]
        if abs(delta) <= SAME_WITHIN * abs(base.metric):
            word = f"matches the best baseline on {self.metric_name} (within {SAME_WITHIN:.1%}: one training seed)"
        else:
            word = ("beats" if better else "falls short of") + " the best baseline on " + self.metric_name
        steps = "" if found.steps == base.steps else f" (at {found.steps} vs {base.steps} steps)"
        return f"found vs baseline: {', '.join(parts)}: the search {word}{steps}"

    def to_dict(self) -> dict[str, Any]:
        return {"search": self.search, "metric": self.metric_name, "higher_is_better": self.higher_is_better,
                "found": None if self.found is None else vars(self.found),
                "baseline": None if self.baseline is None else vars(self.baseline),
                "n_found": self.n_found, "n_baselines": self.n_baselines, "lines": self.lines()}


def _ratio(a: int | None, b: int | None) -> str:
    if a is None or b is None:
        return "?"
    if b == 0:
        return f"{a:,} vs 0"
    return f"{a:,} vs {b:,} ({a / b:.2f}x)"


def _entry_line(label: str, entry: Entry | None, metric: str, missing: str) -> str:
    if entry is None:
        return f"{label}  {missing}"
    params = "?" if entry.params is None else f"{entry.params:,}"
    state = "?" if entry.state_size is None else f"{entry.state_size:,}"
    name = f"{entry.baseline}: " if entry.baseline else ""
    return (f"{label}  {metric} {entry.metric:.3f}  params {params}  state {state}  e{entry.evaluation}  "
            f"{name}{entry.compact}")


def _entry(record: Any) -> Entry:
    facts = arch_facts(record.arch, record.task)
    params = record.params if record.params is not None else facts.params
    return Entry(evaluation=record.id, arch=record.arch, compact=facts.compact, metric=float(record.metric),
                 steps=record.steps, params=params, state_size=facts.state_size, baseline=baseline_name(record.arch))


def _best(entries: list[Entry], higher_is_better: bool) -> Entry | None:
    if not entries:
        return None
    sign = 1 if higher_is_better else -1
    inf = float("inf")
    return max(entries, key=lambda e: (e.steps, sign * e.metric, -(e.state_size if e.state_size is not None else inf),
                                       -(e.params if e.params is not None else inf)))


def headline(entries: Iterable[Entry], search: str, metric_name: str = "metric",
             higher_is_better: bool = True) -> Headline:
    """The headline of a search's successful results."""
    entries = list(entries)
    found = [e for e in entries if e.baseline is None]
    base = [e for e in entries if e.baseline is not None]
    out = Headline(search=search, metric_name=metric_name, higher_is_better=higher_is_better,
                   found=_best(found, higher_is_better), baseline=_best(base, higher_is_better),
                   n_found=len({e.arch for e in found}), n_baselines=len({e.arch for e in base}))
    log.debug("headline of %s: %d found, %d baselines", search, out.n_found, out.n_baselines)
    return out


def headline_of(records: Iterable[Any], search: str) -> Headline:
    """The headline of a search's evaluation records (`storage.EvaluationRecord`s; failures are skipped)."""
    done = [r for r in records if r.status == "ok" and r.metric is not None]
    metric = (done[0].metric_name if done else None) or "metric"
    return headline([_entry(r) for r in done], search, metric, done[0].higher_is_better if done else True)


def headline_of_points(points: Iterable[Any], search: str, metric_name: str, higher_is_better: bool) -> Headline:
    """The headline from the HTML report's `report.data.Point`s of the search named `search`."""
    entries = [Entry(evaluation=p.evaluation, arch=p.arch, compact=p.compact, metric=p.metric, steps=p.steps,
                     params=p.params, state_size=p.state_size, baseline=p.baseline)
               for p in points if p.search == search]
    return headline(entries, search, metric_name, higher_is_better)


def search_headline(store: Any, search: str) -> Headline:
    """The headline of the search named `search` in `store` (a `storage.Store`)."""
    return headline_of(store.evaluations(search), search)
