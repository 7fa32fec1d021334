"""Executors: where candidates are trained. The search loop submits candidates and waits for results.

One interface for all (asynchronous, so a loop can keep every worker busy):
    key = executor.submit(candidate)          # returns at once
    done = executor.wait(timeout)             # [(key, Result), ...]: at least one unless timeout passes
    executor.shutdown()

`make_executor` creates one by name: `local` (`executor_local.py`: in the calling process, one at a
time), `ray` (`executor_ray.py`: each candidate a Ray task) or `fake[:DELAY]` (`executor_fake.py`: a
cheap deterministic score instead of training, for tests and benchmarks of search strategies).
"""
from __future__ import annotations

from typing import Any, Hashable, Protocol

from einsearch.errors import UsageError
from einsearch.evaluators.budgets import Budgets
from einsearch.evaluators.types import Candidate, Result

EXECUTORS = ("ray", "local", "fake")
RAY_OPTIONS = ("address", "num_cpus", "num_gpus", "max_retries")


class Executor(Protocol):
    def submit(self, candidate: Candidate) -> Hashable: ...

    def wait(self, timeout: float | None = None) -> list[tuple[Hashable, Result]]:
        """Finished (key, result) pairs: at least one, unless `timeout` passes first."""

    def shutdown(self) -> None: ...


def make_executor(kind: str, workers: int = 1, **options: Any) -> Executor:
    """`local`, `ray` or `fake[:DELAY_SECONDS]`. Options: the `Budgets` fields, and for Ray `address`,
    `num_cpus`, `num_gpus`, `max_retries` (the other executors ignore those four)."""
    unknown = set(options) - set(Budgets.__dataclass_fields__) - set(RAY_OPTIONS)
    if unknown:
        raise UsageError(f"executor {kind!r}: unknown option {sorted(unknown)[0]!r}")
    name, _, arg = kind.partition(":")
    if name == "fake":
        from einsearch.evaluators.executor_fake import FakeExecutor

        try:
            return FakeExecutor(delay=float(arg or 0), train_seeds=options.get("train_seeds", 1))
        except ValueError:
            raise UsageError(f"executor {kind!r}: the delay must be a number of seconds") from None
    if name == "local":
        from einsearch.evaluators.executor_local import LocalExecutor

        return LocalExecutor(workers=workers, **{k: v for k, v in options.items() if k not in RAY_OPTIONS})
    if name == "ray":
        from einsearch.evaluators.executor_ray import RayExecutor

        return RayExecutor(workers=workers, **options)
    raise UsageError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")
