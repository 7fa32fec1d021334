"""Executors: where candidates are trained. The search loop submits candidates and waits for results.

Interface (asynchronous, so a loop can keep every worker busy):
    key = executor.submit(candidate)          # returns at once
    done = executor.wait(timeout)             # [(key, Result), ...]: at least one unless timeout passes
    executor.shutdown()

`LocalExecutor` trains in the calling process, one candidate at a time, inside `wait`.
`RayExecutor` (in `executor_ray.py`) runs each candidate as a Ray task.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from einsearch.evaluators.trainer import evaluate
from einsearch.evaluators.types import Candidate, Result


@dataclass(frozen=True)
class Budgets:
    """Per-candidate budgets and options handed to `evaluate`."""

    device: str | None = None
    time_limit: float | None = None
    max_params: int | None = None
    eval_every: int | None = None
    max_mem: int | None = None
    keep_weights: bool = False  # return each successful candidate's trained weights with its result

    def kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Executor(Protocol):
    def submit(self, candidate: Candidate) -> int: ...

    def wait(self, timeout: float | None = None) -> list[tuple[int, Result]]: ...

    def shutdown(self) -> None: ...


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


def __getattr__(name: str) -> Any:
    # `executor.RayExecutor` without importing Ray until it is asked for.
    if name == "RayExecutor":
        from einsearch.evaluators.executor_ray import RayExecutor

        return RayExecutor
    raise AttributeError(name)


def make_executor(kind: str, workers: int = 1, **options: Any) -> Any:
    """'local' or 'ray' (options: budgets, and for Ray address, num_cpus, num_gpus, max_retries)."""
    if kind == "local":
        return LocalExecutor(workers=workers, **{k: v for k, v in options.items() if k in Budgets.__dataclass_fields__})
    if kind == "ray":
        from einsearch.evaluators.executor_ray import RayExecutor

        return RayExecutor(workers=workers, **options)
    raise ValueError(f"unknown executor {kind!r}; choose local or ray")
