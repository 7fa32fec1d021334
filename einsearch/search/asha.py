"""Asynchronous successive halving (ASHA, Li et al. 2020) over training steps, around any strategy.

Rungs train at min_steps, min_steps*eta, ... up to max_steps. The inner strategy proposes new
candidates at the lowest rung; whenever a candidate is in the top 1/eta of the results finished at
its rung and not yet promoted, it is promoted: trained again at the next rung. No rung waits for
another (asynchronous), so most candidates stop at min_steps.
"""
from __future__ import annotations

from typing import Any, Iterable

from einsearch.errors import UsageError
from einsearch.search.base import Strategy
from einsearch.search.types import Candidate, Result


def parse_fidelity(text: str) -> tuple[int, int, int]:
    """'asha:100,1000,3' -> (min_steps, max_steps, eta)."""
    kind, _, rest = text.partition(":")
    try:
        low, high, eta = (int(x) for x in rest.split(","))
    except ValueError:
        raise UsageError(f"fidelity {text!r}: expected asha:min_steps,max_steps,eta") from None
    if kind != "asha":
        raise UsageError(f"fidelity {text!r}: only 'asha:min_steps,max_steps,eta' is supported")
    if not 1 <= low <= high or eta < 2:
        raise UsageError(f"fidelity {text!r}: need 1 <= min_steps <= max_steps and eta >= 2")
    return low, high, eta


MIN_CORRELATION = 0.5  # a low budget whose ranking correlates less with the high budget's is a poor guide


def fidelity_warning(store: Any, task: str, fidelity: str) -> str | None:
    """What a multi-fidelity search should hear about its rungs, from the correlations `einsearch
    fidelity` stored: the one between its lowest and highest budgets is under MIN_CORRELATION, or
    was never measured. None when it is fine (or there is a single rung)."""
    low, high, _ = parse_fidelity(fidelity)
    if low == high:
        return None
    found = store.fidelity_correlation(task, low, high)
    if found is None:
        return (f"fidelity {fidelity}: the rank correlation between {low} and {high} steps on this task is "
                f"unmeasured; measure it with `einsearch fidelity --task {task} --budgets {low},{high}`")
    if found.spearman < MIN_CORRELATION:
        return (f"fidelity {fidelity}: rankings after {low} steps correlate poorly with those after {high} "
                f"(Spearman {found.spearman:.2f} < {MIN_CORRELATION} over {found.n} candidates), so ASHA may "
                f"drop the best architectures early; raise the lowest rung")
    return None


def rung_steps(min_steps: int, max_steps: int, eta: int) -> list[int]:
    steps = [min_steps]
    while steps[-1] < max_steps:
        steps.append(min(steps[-1] * eta, max_steps))
    return steps


class Asha:
    """Wraps a strategy; has the same ask/tell/replay interface."""

    def __init__(self, inner: Strategy, min_steps: int, max_steps: int, eta: int = 3):
        self.inner, self.eta = inner, eta
        self.rungs = rung_steps(min_steps, max_steps, eta)
        inner.steps = self.rungs[0]
        self.name = f"{inner.name}+asha"
        self.results: list[dict[str, float]] = [{} for _ in self.rungs]  # per rung: arch hash -> score
        self.promoted: list[set[str]] = [set() for _ in self.rungs]
        self.archs: dict[str, Candidate] = {}
        self.fidelity_note: str | None = None  # set by the search from the measured correlation

    @property
    def warning(self) -> str | None:
        notes = [note for note in (self.inner.warning, self.fidelity_note) if note]
        return "; ".join(notes) or None

    def score(self, result: Result) -> float | None:
        return self.inner.score(result)

    def rung(self, candidate: Candidate) -> int:
        if candidate.steps not in self.rungs:
            raise UsageError(f"candidate trained for {candidate.steps} steps, not a rung of {self.rungs}")
        return self.rungs.index(candidate.steps)

    def ask(self) -> Candidate:
        for k in reversed(range(len(self.rungs) - 1)):
            key = self._promotable(k)
            if key is not None:
                self.promoted[k].add(key)
                base = self.archs[key]
                return Candidate(arch=base.arch, task=base.task, steps=self.rungs[k + 1], seed=base.seed,
                                 parents=(key,), op="promote")
        candidate = self.inner.ask()
        self.archs[candidate.arch.hash] = candidate
        return candidate

    def _promotable(self, k: int) -> str | None:
        done = self.results[k]
        ranked = sorted(done.items(), key=lambda item: (-item[1], item[0]))[:len(done) // self.eta]
        return next((key for key, _ in ranked if key not in self.promoted[k]), None)

    def tell(self, candidate: Candidate, result: Result) -> None:
        k = self.rung(candidate)
        score = self.inner.score(result)
        if score is not None:
            self.results[k][candidate.arch.hash] = score
        if k == 0:
            self.inner.tell(candidate, result)  # the inner strategy learns from its own proposals

    def replay(self, asked: Iterable[Candidate], told: Iterable[tuple[Candidate, Result]]) -> None:
        # Stored evaluations carry no `op`: a candidate above the lowest rung is a promotion.
        asked, told = list(asked), list(told)
        for candidate in asked:
            if candidate.steps != self.rungs[0]:
                self.promoted[self.rung(candidate) - 1].add(candidate.arch.hash)
            else:
                self.archs[candidate.arch.hash] = candidate
        self.inner.replay([c for c in asked if c.steps == self.rungs[0]], [])
        for candidate, result in told:
            self.tell(candidate, result)
