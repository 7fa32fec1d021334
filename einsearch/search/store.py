"""What a search needs of its store: `einsearch.storage.Store` satisfies this protocol.

The search never talks SQL; it records evaluations and reads them back as typed records.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from einsearch.grammar import Report
from einsearch.search.types import Candidate, Result

if TYPE_CHECKING:
    from einsearch.storage.records import EvaluationRecord, FidelityRecord, SearchRecord


class Store(Protocol):
    def create_search(self, name: str, *, task: Any, strategy: str, config: Mapping[str, Any] | None = None,
                      seed: int = 0, budget: int | None = None) -> Any: ...

    def find_search(self, name: str) -> "SearchRecord | None": ...

    def get_search(self, name: str) -> "SearchRecord": ...

    def set_search_status(self, name: str, status: str) -> None: ...

    def start_evaluation(self, search: str, candidate: Candidate, *, report: Report | None = None,
                         recipe: str | None = None) -> int: ...

    def finish_evaluation(self, evaluation_id: int, result: Result) -> "EvaluationRecord": ...

    def record_cache_hit(self, search: str, candidate: Candidate, source_id: int) -> int: ...

    def cached_evaluation(self, arch_hash: str, task: str, steps: int, seed: int, lr: float | None = None,
                          recipe: str | None = None) -> "EvaluationRecord | None": ...

    def evaluations(self, search: str | None = None) -> "list[EvaluationRecord]": ...

    def abandon_running(self, search: str | None = None, reason: str = "interrupted") -> int: ...

    def save_weights(self, evaluation_id: int, state_dict: Mapping[str, Any]) -> Path: ...

    def prune_weights(self, search: str, keep: int) -> list[int]: ...

    def fidelity_correlation(self, task: str, low_steps: int, high_steps: int) -> "FidelityRecord | None": ...

    def record_fidelity(self, task: str, low_steps: int, high_steps: int, spearman: float, n: int,
                        search: str | None = None) -> "FidelityRecord": ...


RunKey = tuple[str, str, int, int, float | None]  # `Candidate.key`: arch hash, task, steps, seed, lr


class LeaseStore(Store, Protocol):
    """A store shared by several drivers (`einsearch.storage.Store` is one): a run (architecture, task,
    steps, seed, rate) is trained under a lease, renewed by a heartbeat, so two drivers never train it both."""

    def acquire_lease(self, run: RunKey, owner: str, ttl_s: float, *, search: str | None = None,
                      takeover_reason: str = ...) -> bool: ...

    def attach_lease(self, run: RunKey, owner: str, evaluation_id: int) -> None: ...

    def release_lease(self, run: RunKey, owner: str) -> None: ...

    def release_leases(self, *, owner: str | None = None, search: str | None = None) -> int: ...

    def heartbeat(self, owner: str, ttl_s: float, *, search: str | None = None) -> int: ...
