"""Recheck: train a search's best architectures again on more training seeds.

A search trains each candidate once, on one training seed. On recall tasks like MQAR a model sits on a
plateau and then jumps, at a step that varies by seed, so a one-seed ranking can put a lucky draw first.
`recheck` trains the top architectures (or the ones named) at the search's full steps and chosen rate
on the next training seeds, through the search loop: every run is stored and cached, and running the
same recheck again resumes it. The runs live in the search `NAME-check`; the search's own run is the
first seed (the first N for a search trained with `--train-seeds N`: their values are stored beside
its mean).
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Callable, Sequence

from einsearch.errors import EinsearchError, UsageError
from einsearch.evaluators.executor import Executor
from einsearch.evaluators.seeds import seed_values
from einsearch.grammar import parse
from einsearch.search.fidelity import FixedCandidates
from einsearch.search.loop import INTERRUPTED, Progress, SearchLoop
from einsearch.search.run import SearchConfig, drive, loop_leases, make_executor, stored_config
from einsearch.search.store import Store
from einsearch.search.types import Candidate
from einsearch.tasks import get_task

if TYPE_CHECKING:
    from einsearch.storage.records import EvaluationRecord


@dataclass(frozen=True)
class Rechecked:
    """One architecture's results by training seed (None: that run failed)."""

    arch: str
    evaluation: int  # the search's own evaluation of it
    params: int | None
    metric_name: str
    runs: dict[int, float | None]
    own_seeds: int = 1  # how many of the runs, from the first, are the search's own (its --train-seeds)

    @property
    def complete(self) -> bool:
        return all(value is not None for value in self.runs.values())

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.runs.values()) if self.complete else None

    @property
    def std(self) -> float | None:
        return statistics.pstdev(self.runs.values()) if self.complete else None


def check_name(search: str) -> str:
    return f"{search}-check"


def best_runs(records: Sequence[EvaluationRecord], higher_is_better: bool) -> list[EvaluationRecord]:
    """Each architecture's best successful run at the search's highest step count, best first."""
    ok = [r for r in records if r.status == "ok" and r.metric is not None]
    if not ok:
        return []
    steps = max(r.steps for r in ok)
    sign = 1.0 if higher_is_better else -1.0
    best: dict[str, EvaluationRecord] = {}
    for r in sorted((r for r in ok if r.steps == steps), key=lambda r: (-sign * r.metric, r.id)):
        best.setdefault(r.arch_hash, r)
    return list(best.values())


def recheck(store: Store, search: str, *, seeds: int = 3, top: int = 5, archs: Sequence[str] = (),
            executor: str | None = None, workers: int | None = None,
            candidate_time_limit_s: float | None = None,
            on_progress: Callable[[Progress], None] | None = None,
            executor_obj: Executor | None = None) -> list[Rechecked]:
    """The `top` best architectures of `search` (or those of `archs`, canonical strings it evaluated) on
    `seeds` training seeds: the search's own (all of them with `--train-seeds`, even beyond `seeds`),
    then the next ones. Executor and workers default to the search's. Ranked by mean, best first;
    incomplete ones (a failed run) last."""
    if seeds < 2 or top < 1:
        raise UsageError(f"recheck: --seeds must be >= 2 and --top >= 1, got {seeds} and {top}")
    config = stored_config(store, search)
    task = get_task(config.task, allow_factory=False)
    best = best_runs(store.evaluations(search), task.higher_is_better)
    if not best:
        raise UsageError(f"recheck: search {search!r} has no successful evaluation")
    if archs:
        by_arch = {r.arch: r for r in best}
        named = list(dict.fromkeys(_canonical(a) for a in archs))
        missing = [a for a in named if a not in by_arch]
        if missing:
            raise UsageError(f"recheck: {missing[0][:80]!r} is not among search {search!r}'s evaluated "
                             f"architectures (at its highest step count)")
        chosen = [by_arch[a] for a in named]
    else:
        chosen = best[:top]
    own = config.train_seeds  # seeds each of the search's evaluations was trained on
    candidates = [Candidate(arch=parse(r.arch), task=task.spec, steps=r.steps, seed=r.seed + i, lr=r.lr, op="recheck")
                  for i in range(own, seeds) for r in chosen]
    name = check_name(search)
    config = replace(config, name=name, strategy="recheck", keep_weights=0, fidelity=None, lr_grid=None, train_seeds=1,
                     objectives=None, time_limit_s=None, executor=executor or config.executor,
                     workers=workers or config.workers,
                     candidate_time_limit_s=candidate_time_limit_s or config.candidate_time_limit_s)
    _train(store, config, task, candidates, on_progress, executor_obj)
    trained = {(r.arch, r.seed): r.metric if r.status == "ok" else None
               for r in store.evaluations(name) if r.error != INTERRUPTED}
    out = [Rechecked(r.arch, r.id, r.params, r.metric_name or "metric",
                     _own_runs(r, own) | {r.seed + i: trained.get((r.arch, r.seed + i)) for i in range(own, seeds)},
                     own)
           for r in chosen]
    sign = 1.0 if task.higher_is_better else -1.0
    return sorted(out, key=lambda c: (not c.complete, -sign * (c.mean or 0.0)))


def _train(store: Store, config: SearchConfig, task, candidates: list[Candidate],
           on_progress: Callable[[Progress], None] | None, executor_obj: Executor | None) -> None:
    """Train the candidates not yet finished in the check search (created here, or resumed)."""
    existing = store.find_search(config.name)
    if existing is not None and existing.strategy != "recheck":
        raise UsageError(f"recheck: a search named {config.name!r} already exists and is not a recheck")
    records = store.evaluations(config.name) if existing is not None else []
    # The loop's budget counts finished records (the restored ones too): those, plus every run still to do
    # (ours not yet finished, and any a killed recheck left running or interrupted: resuming re-runs them).
    finished = [r for r in records if r.status != "running" and r.error != INTERRUPTED]
    todo = ({c.key for c in candidates} | {_key(r) for r in records}) - {_key(r) for r in finished}
    budget = len(finished) + len(todo)
    if existing is None:
        store.create_search(config.name, task=task.spec, strategy="recheck", config=asdict(config),
                            seed=config.seed, budget=budget)
    if not todo:
        return
    executor = executor_obj or make_executor(config)
    loop = SearchLoop(FixedCandidates(task, candidates), executor, store, task=task, search=config.name,
                      budget=budget, workers=config.workers, on_progress=on_progress,
                      leases=loop_leases(store, config.name))
    drive(loop, store, config.name, executor, resume=existing is not None)


def _own_runs(record: EvaluationRecord, own: int) -> dict[int, float | None]:
    """The search's own value(s) of an evaluation, by training seed."""
    if own == 1:
        return {record.seed: record.metric}
    return seed_values(record.metric_name or "metric", record.metrics.get("extra_metrics") or {}, record.seed, own)


def _canonical(text: str) -> str:
    """An --arch string in canonical form; one that does not parse is a UsageError naming the option."""
    try:
        return str(parse(text))
    except EinsearchError as err:
        raise UsageError(f"recheck --arch: {err}") from None


def _key(record: EvaluationRecord) -> tuple:
    """The record's run, as `Candidate.key` spells it."""
    return (record.arch_hash, record.task, record.steps, record.seed, None if record.lr is None else float(record.lr))
