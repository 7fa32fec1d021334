"""The Ray executor: each candidate is a Ray task with declared resources.

Without `address` it starts a local Ray once (no dashboard, token authentication off unless the
environment says otherwise) sized to `workers * num_cpus` CPUs, so at most `workers` candidates run
at once, with a watchdog (ray_watchdog.py) that takes that Ray down if the driver is killed; with
`address` ("auto" or "HOST:PORT") it joins a running cluster (`ray start --head` on one machine,
`ray start --address=HOST:PORT` on the others). `num_gpus` may be fractional to pack several
small candidates on one GPU; each candidate also reserves `memory=` its estimated footprint
(`resources.memory_bytes`: parameters, optimizer state and activations), capped at the largest node's
memory, so Ray does not over-pack a node. A worker that dies is retried `max_retries` times, then
reported failed; one lost with its node (a dead raylet, a lost machine) is reported failed with the
reason "node lost". Each result names the Ray node that trained it (`Result.node_id`).
Ray workers start in the driver's working directory with it on their path, so a user task given as
`my_module:make_task` from there imports in the workers too.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
from typing import Any

from einsearch.evaluators import ray_watchdog
from einsearch.evaluators.budgets import Budgets
from einsearch.evaluators.resources import memory_bytes
from einsearch.evaluators.types import Candidate, Result, one_line

log = logging.getLogger(__name__)


def _run(candidate: dict[str, Any], budgets: dict[str, Any], threads: int) -> tuple[dict[str, Any], Any]:
    """Body of the Ray task: train one candidate in the worker, with the worker's CPU share as threads."""
    import torch

    from einsearch.evaluators.trainer import evaluate

    import ray

    torch.set_num_threads(threads)
    result = evaluate(Candidate.from_dict(candidate), **budgets)
    result = dataclasses.replace(result, node_id=ray.get_runtime_context().get_node_id())
    return result.to_dict(), result.weights  # the weights (tensors) travel beside the JSON-ready dict


def _reason(err: Exception, retries: int) -> str:
    import ray.exceptions as rex

    if isinstance(err, rex.RayTaskError):
        cause = getattr(err, "cause", None) or err
        return f"{type(cause).__name__}: {one_line(str(cause).splitlines()[-1] if str(cause) else '')}"
    if isinstance(err, rex.NodeDiedError) or _node_lost(err):
        return f"node lost after {retries + 1} attempt(s): {one_line(str(err))}"
    if isinstance(err, (rex.WorkerCrashedError, rex.ActorDiedError)):
        return f"worker died after {retries + 1} attempt(s): {one_line(str(err))}"
    if isinstance(err, rex.TaskCancelledError):
        return "cancelled"
    return f"{type(err).__name__}: {one_line(str(err))}"


def _node_lost(err: Exception) -> bool:
    """A system failure whose cause is a dead node (Ray words it in several ways across versions)."""
    import ray.exceptions as rex

    lost = (rex.WorkerCrashedError, rex.ObjectLostError, rex.OwnerDiedError, rex.RaySystemError)
    text = str(err).lower()
    return isinstance(err, lost) and any(word in text for word in ("node", "raylet"))


def _largest_node_memory() -> int | None:
    import ray

    sizes = [node.get("Resources", {}).get("memory") for node in ray.nodes() if node.get("Alive")]
    sizes = [int(size) for size in sizes if size]
    return max(sizes) if sizes else None


class RayExecutor:
    def __init__(self, workers: int = 2, *, address: str | None = None, num_cpus: float = 1, num_gpus: float = 0,
                 max_retries: int = 1, **budgets: Any):
        import ray

        if workers < 1 or num_cpus <= 0 or num_gpus < 0 or max_retries < 0:
            raise ValueError(f"RayExecutor: bad resources workers={workers}, num_cpus={num_cpus}, "
                             f"num_gpus={num_gpus}, max_retries={max_retries}")
        self.workers, self.num_cpus, self.num_gpus, self.max_retries = workers, num_cpus, num_gpus, max_retries
        self.budgets = Budgets(**budgets)
        if self.budgets.device is None:
            self.budgets = Budgets(**{**self.budgets.kwargs(), "device": "cuda" if num_gpus > 0 else "cpu"})
        self.owns_ray = False
        self._watchdog: Any = None
        if not ray.is_initialized():
            tick = time.perf_counter()
            if address is None:
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, single-user Ray: no token warning
                ray.init(num_cpus=max(1, round(workers * num_cpus)), include_dashboard=False,
                         logging_level=logging.ERROR, log_to_driver=False)
                self._watchdog = ray_watchdog.watch()  # a kill -9 of this driver takes its Ray along
            else:
                ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
            self.owns_ray = True
            log.info("ray started in %.1fs", time.perf_counter() - tick)
        self._remote = ray.remote(_run)
        self._options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_retries": max_retries,
                         "retry_exceptions": False}
        self.memory_cap = _largest_node_memory()
        self._ids = itertools.count(1)
        self._pending: dict[Any, int] = {}  # ObjectRef -> key

    def submit(self, candidate: Candidate) -> int:
        key = next(self._ids)
        threads = max(1, int(self.num_cpus))
        memory = memory_bytes(candidate)
        if self.memory_cap is not None and memory > self.memory_cap:
            log.warning("candidate %s: estimated %.1f GiB exceeds every node's memory; reserving %.1f GiB",
                        candidate.arch.hash[:12], memory / 2**30, self.memory_cap / 2**30)
            memory = self.memory_cap
        ref = self._remote.options(**self._options, memory=memory).remote(candidate.to_dict(), self.budgets.kwargs(), threads)
        self._pending[ref] = key
        return key

    def pending(self) -> int:
        return len(self._pending)

    def wait(self, timeout: float | None = None) -> list[tuple[int, Result]]:
        """Every finished candidate (at least one, unless `timeout` seconds pass first)."""
        import ray

        if not self._pending:
            return []
        refs = list(self._pending)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out = []
        for ref in ready:
            key = self._pending.pop(ref)
            try:
                data, weights = ray.get(ref)
                result = dataclasses.replace(Result.from_dict(data), weights=weights)
            except Exception as err:  # the task's own failures are Results; these are Ray's (dead worker, ...)
                result = Result.failure(_reason(err, self.max_retries))
            out.append((key, result))
        return out

    def shutdown(self) -> None:
        import ray

        for ref in list(self._pending):
            ray.cancel(ref, force=True)
        self._pending.clear()
        if self.owns_ray and ray.is_initialized():
            ray.shutdown()
            self.owns_ray = False
        ray_watchdog.stop(self._watchdog)
        self._watchdog = None

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
