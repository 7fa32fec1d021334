"""The local executor: trains in the calling process, one candidate at a time."""
from __future__ import annotations

import itertools
from collections import deque
from typing import Any

from einsearch.evaluators.budgets import Budgets
from einsearch.evaluators.trainer import evaluate
from einsearch.evaluators.types import Candidate, Result


class LocalExecutor:
    """In-process, one at a time: `wait` trains the oldest submitted candidate and returns its result.

    `workers` is accepted for interface parity and ignored (the loop may keep several submitted;
    they run in order). A timeout cannot interrupt a candidate that is training."""

    def __init__(self, workers: int = 1, **budgets: Any):
        self.workers = workers
        self.budgets = Budgets(**budgets)
        self._ids = itertools.count(1)
        self._queue: deque[tuple[int, Candidate]] = deque()

    def submit(self, candidate: Candidate) -> int:
        key = next(self._ids)
        self._queue.append((key, candidate))
        return key

    def pending(self) -> int:
        return len(self._queue)

    def wait(self, timeout: float | None = None) -> list[tuple[int, Result]]:
        if not self._queue:
            return []
        key, candidate = self._queue.popleft()
        return [(key, evaluate(candidate, **self.budgets.kwargs()))]

    def shutdown(self) -> None:
        self._queue.clear()

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
