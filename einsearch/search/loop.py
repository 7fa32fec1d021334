"""The search loop: owns the executor, the store, the budget and the progress callback.

Asynchronous: as soon as one candidate finishes it is stored and told, and new ones are asked until
every worker is busy again; there is no generation barrier. The store is a cache shared by all
searches: a candidate already trained (same architecture hash, task, steps, training seed, rate and
recipe key) is never trained again; its stored result is reused and counted as a cache hit.

Resume: evaluations this search finished are kept and replayed into a fresh strategy (rebuilding
its population, learned weights or Optuna trials); ones left running by a killed process are marked
interrupted and trained again. The budget counts finished evaluations (ok, failed, cache hits).

Several drivers on one store: with `leases`, a candidate is trained under its run's lease; one whose
run another driver is training waits (holding a worker slot) until that result is in the store and
is then a cache hit, or until the lease is released or expires, and is then trained here.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Hashable, Protocol

from einsearch.errors import UsageError
from einsearch.evaluators.executor import Executor
from einsearch.evaluators.recipe_key import recipe_key
from einsearch.grammar import Arch, check, parse
from einsearch.search.store import Store
from einsearch.search.types import Candidate, Result, succeeded
from einsearch.tasks import Task

if TYPE_CHECKING:
    from einsearch.search.leases import Leases
    from einsearch.storage.records import EvaluationRecord

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: re-run on resume"
WAIT_POLL_S = 0.5  # how often a candidate another driver is training is looked for in the store
TOP_K = 5  # how many of the best candidates Progress keeps for a live view


@dataclass(frozen=True)
class Finished:
    """One finished evaluation, as a progress view shows it."""

    arch: Arch
    steps: int
    status: str
    metric: float | None
    metric_name: str
    cached: bool = False
    error: str | None = None
    score: float | None = None  # the strategy's score: higher is better


class AskTell(Protocol):
    name: str
    warning: str | None

    def ask(self) -> Candidate: ...

    def tell(self, candidate: Candidate, result: Result) -> None: ...

    def replay(self, asked: list[Candidate], told: list[tuple[Candidate, Result]]) -> None: ...

    def score(self, result: Result) -> float | None: ...


@dataclass
class Progress:
    budget: int
    done: int = 0  # finished evaluations counted against the budget (ok + failed + cache hits)
    failed: int = 0
    cache_hits: int = 0
    running: int = 0
    best: float | None = None  # best metric so far (at the highest fidelity seen)
    best_steps: int = 0
    best_arch: str | None = None
    started: float = field(default_factory=time.monotonic)
    stopped: str | None = None  # why the loop ended: budget | time limit | exhausted
    top: list[Finished] = field(default_factory=list)  # the best TOP_K distinct architectures, best first
    recent: list[Finished] = field(default_factory=list)  # finished since the last on_progress call

    def note(self, finished: Finished) -> None:
        """Count `finished` among the recent ones and, if it succeeded, in the top TOP_K (highest
        fidelity first, then score; one entry per architecture)."""
        self.recent.append(finished)
        if finished.score is None:
            return
        rank = lambda f: (f.steps, f.score)  # noqa: E731
        if any(f.arch.hash == finished.arch.hash and rank(f) >= rank(finished) for f in self.top):
            return
        others = [f for f in self.top if f.arch.hash != finished.arch.hash]
        self.top = sorted(others + [finished], key=rank, reverse=True)[:TOP_K]


def _result_of(record: EvaluationRecord) -> Result:
    return Result(status=record.status, metric_name=record.metric_name or "", metric=record.metric,
                  error=record.error)


def _candidate_of(record: EvaluationRecord, task: str | None = None) -> Candidate:
    """A stored evaluation as a candidate, on `task` (the search's own task spec) when given: a task
    spec read from the database is never resolved (a 'module:factory' spec would import code)."""
    return Candidate(arch=parse(record.arch), task=task or record.task, steps=record.steps, seed=record.seed,
                     lr=getattr(record, "lr", None))


class SearchLoop:
    def __init__(self, strategy: AskTell, executor: Executor, store: Store, *, task: Task, search: str, budget: int,
                 workers: int = 1, time_limit_s: float | None = None, keep_weights: int = 0,
                 on_progress: Callable[[Progress], None] | None = None, leases: Leases | None = None,
                 train_seeds: int = 1):
        if budget < 1 or workers < 1:
            raise UsageError(f"budget and workers must be >= 1, got budget={budget}, workers={workers}")
        self.strategy, self.executor, self.store, self.task = strategy, executor, store, task
        self.search, self.workers, self.time_limit_s = search, workers, time_limit_s
        self.keep_weights = keep_weights  # trained weights kept for the search's top K (0: none)
        self.train_seeds = train_seeds  # seeds each candidate is trained on (the executor's); part of its recipe
        self.progress = Progress(budget)
        self.on_progress = on_progress or (lambda progress: None)
        self.running: dict[Hashable, tuple[Candidate, int]] = {}  # executor key -> (candidate, evaluation id)
        self.rerun: list[Candidate] = []
        self.leases = leases
        self.waiting: list[Candidate] = []  # candidates whose run another driver holds the lease of

    # ---- resume -----------------------------------------------------------------------------------
    def restore(self) -> None:
        """Replay this search's stored evaluations into the strategy; queue interrupted ones."""
        if self.leases is not None:  # the search's old driver is gone: its leases go with it
            self.store.release_leases(search=self.search)
        self.store.abandon_running(self.search, reason=INTERRUPTED)
        asked, told = [], []
        for record in self.store.evaluations(self.search):
            candidate = _candidate_of(record)
            if record.error == INTERRUPTED:
                candidate = _candidate_of(record, self.task.spec)
                if all(c.key != candidate.key for c in self.rerun):
                    self.rerun.append(candidate)
                    asked.append(candidate)
                continue
            self.rerun = [c for c in self.rerun if c.key != candidate.key]
            asked.append(candidate)
            result = _result_of(record)
            told.append((candidate, result))
            self._count(candidate, result, cached=record.cached_from is not None)
        self.strategy.replay(asked, told)
        self.progress.recent.clear()  # replayed ones are not news to a progress view

    # ---- the loop ---------------------------------------------------------------------------------
    def run(self) -> Progress:
        progress = self.progress
        while True:
            if progress.stopped is None:
                self._fill()
            self._report()
            if not self.running and not self.waiting:
                break
            if self.waiting and progress.stopped is not None:
                self.waiting.clear()  # out of time: not worth waiting for another driver
            if self.waiting:
                self._poll_waiting()
            timeout = self._time_left()
            if self.waiting:
                timeout = WAIT_POLL_S if timeout is None else min(timeout, WAIT_POLL_S)
                if not self.running:
                    time.sleep(timeout)
            for key, result in self.executor.wait(timeout=timeout) if self.running else []:
                candidate, evaluation = self.running.pop(key)
                self.store.finish_evaluation(evaluation, result)
                if self.leases is not None:
                    self.leases.release(candidate)
                if self.keep_weights and result.weights is not None:
                    self._keep(evaluation, result.weights)
                self.strategy.tell(candidate, result)
                self._count(candidate, result, cached=False)
            progress.running = len(self.running)
            if self._time_left() == 0 and progress.stopped is None:
                progress.stopped = "time limit"
        progress.stopped = progress.stopped or "budget"
        self._report()
        return progress

    def _report(self) -> None:
        self.on_progress(self.progress)
        self.progress.recent.clear()

    def _keep(self, evaluation: int, weights: dict) -> None:
        """Save the weights, then drop those outside the top K: at most K + 1 files exist at once."""
        try:
            self.store.save_weights(evaluation, weights)
            self.store.prune_weights(self.search, self.keep_weights)
        except Exception as err:  # disk full, permissions: the result is stored; the search goes on
            log.warning("weights of evaluation %s not kept: %s", evaluation, err)

    def _time_left(self) -> float | None:
        if self.time_limit_s is None:
            return None
        return max(0.0, self.time_limit_s - (time.monotonic() - self.progress.started))

    def _fill(self) -> None:
        from einsearch.search.base import SearchExhausted

        progress = self.progress
        while (len(self.running) + len(self.waiting) < self.workers
               and progress.done + len(self.running) + len(self.waiting) < progress.budget):
            if self._time_left() == 0:
                progress.stopped = "time limit"
                return
            try:
                candidate = self.rerun.pop(0) if self.rerun else self.strategy.ask()
            except SearchExhausted as err:
                log.warning("%s", err)
                progress.stopped = "exhausted"
                return
            if self._reuse(candidate):
                continue
            if self.leases is not None and not self.leases.acquire(candidate):
                self.waiting.append(candidate)
                continue
            self._start(candidate)

    def _reuse(self, candidate: Candidate) -> bool:
        """Record a cache hit when the store has this run's result; True if it did."""
        cached = self.store.cached_evaluation(candidate.arch.hash, candidate.task, candidate.steps, candidate.seed,
                                              candidate.lr, recipe=recipe_key(candidate, self.train_seeds))
        if cached is None:
            return False
        self.store.record_cache_hit(self.search, candidate, cached.id)
        result = _result_of(cached)
        self.strategy.tell(candidate, result)
        self._count(candidate, result, cached=True)
        return True

    def _start(self, candidate: Candidate) -> None:
        """Train a candidate whose lease this driver holds (or, without leases, any candidate)."""
        if self.leases is not None and self._reuse(candidate):  # finished elsewhere before we took the lease
            self.leases.release(candidate)
            return
        evaluation = self.store.start_evaluation(self.search, candidate, report=check(candidate.arch, self.task),
                                                 recipe=recipe_key(candidate, self.train_seeds))
        if self.leases is not None:
            self.leases.attach(candidate, evaluation)
        self.running[self.executor.submit(candidate)] = (candidate, evaluation)
        self.progress.running = len(self.running)

    def _poll_waiting(self) -> None:
        """Candidates another driver was training: reuse their results, or train them once the lease is free."""
        still = []
        for candidate in self.waiting:
            if self._reuse(candidate):
                continue
            if self.leases is not None and self.leases.acquire(candidate):
                self._start(candidate)
            else:
                still.append(candidate)
        self.waiting = still

    def _count(self, candidate: Candidate, result: Result, cached: bool) -> None:
        progress = self.progress
        progress.done += 1
        progress.cache_hits += cached
        ok = succeeded(result)
        score = self.strategy.score(result) if ok else None
        progress.note(Finished(candidate.arch, candidate.steps, result.status, result.metric, result.metric_name,
                               cached, result.error, score))
        if not ok:
            progress.failed += 1
            return
        best = None if progress.best is None else self.strategy.score(
            Result(status="ok", metric_name=result.metric_name, metric=progress.best))
        if candidate.steps > progress.best_steps or (candidate.steps == progress.best_steps and score > best):
            progress.best, progress.best_steps, progress.best_arch = result.metric, candidate.steps, str(candidate.arch)
