"""The loop under leases (in one process): a run another driver holds is waited for and reused, or
trained here once that driver's lease is released without a result; the budget stays exact."""
from __future__ import annotations

import threading

from einsearch.evaluators.executor_fake import FakeExecutor, fake_result
from einsearch.evaluators.recipe_key import recipe_key
from einsearch.grammar import Limits
from einsearch.search.leases import Leases
from einsearch.search.loop import SearchLoop
from einsearch.search.registry import make_strategy
from einsearch.storage.store import Store
from einsearch.tasks import get_task

TASK = get_task("toy-causal")
SPEC = "evolution:population=4"


def _strategy():
    return make_strategy(SPEC, TASK, steps=50, seed=0, limits=Limits(max_params=200_000))


def _loop(store, name, budget, leases, executor):
    store.create_search(name, task=TASK, strategy=SPEC, budget=budget)
    return SearchLoop(_strategy(), executor, store, task=TASK, search=name, budget=budget, workers=1, leases=leases)


def test_a_run_held_elsewhere_is_waited_for_then_reused(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        first = _strategy().ask()  # what the loop will ask first (same seed)
        store.create_search("other", task=TASK, strategy=SPEC)
        other = Leases(store, "other", ttl_s=30)
        assert other.acquire(first)
        held = store.start_evaluation("other", first, recipe=recipe_key(first))

        def other_finishes() -> None:  # the other driver's result lands a second later
            store.finish_evaluation(held, fake_result(first))
            other.release(first)

        timer = threading.Timer(1.0, other_finishes)
        timer.start()
        executor = FakeExecutor()
        mine = Leases(store, "mine", ttl_s=30)
        progress = _loop(store, "mine", 3, mine, executor).run()
        timer.join()
        assert (progress.done, progress.cache_hits, executor.submitted) == (3, 1, 2)
        reused = [e for e in store.evaluations("mine") if e.cached_from is not None]
        assert [(e.arch_hash, e.cached_from) for e in reused] == [(first.arch.hash, held)]
        assert store.release_leases(owner=mine.owner) == 0  # each released as its result was stored


def test_a_run_released_without_result_is_trained_here(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        first = _strategy().ask()
        store.create_search("other", task=TASK, strategy=SPEC)
        other = Leases(store, "other", ttl_s=30)
        assert other.acquire(first)
        timer = threading.Timer(1.0, lambda: other.release(first))  # the other driver gave up on it
        timer.start()
        executor = FakeExecutor()
        progress = _loop(store, "mine", 2, Leases(store, "mine", ttl_s=30), executor).run()
        timer.join()
        assert (progress.done, progress.cache_hits, executor.submitted) == (2, 0, 2)
        assert first.arch.hash in {e.arch_hash for e in store.evaluations("mine") if e.cached_from is None}
