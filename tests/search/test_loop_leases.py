"""The loop under leases (in one process): a run another driver holds is waited for and reused, or
trained here once that driver's lease is released without a result; the budget stays exact."""
from __future__ import annotations

import threading
import time

import pytest

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


class Watching(FakeExecutor):
    """Each run takes longer than the lease time to live; meanwhile it notes whether its run is leased and
    whether the store shows its search as stale (what `einsearch searches` prints as 'stale (resume it)')."""

    def __init__(self, store, seconds: float):
        super().__init__()
        self.store, self.seconds, self.seen = store, seconds, []

    def submit(self, candidate):
        time.sleep(self.seconds)
        stale = {s.search.name: s.stale for s in self.store.searches()}
        self.seen.append((self.store.lease_holder(candidate.key) is not None, stale))
        return super().submit(candidate)


@pytest.mark.parametrize("loop", ["recheck", "fidelity"])
def test_fixed_list_loops_hold_leases_so_a_long_run_never_shows_its_search_as_stale(tmp_path, monkeypatch, loop):
    from einsearch.search.fidelity import measure_fidelity
    from einsearch.search.recheck import check_name, recheck
    from einsearch.search.run import SearchConfig, run_search

    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        config = SearchConfig(name="s", task=TASK.spec, strategy="random", budget=2, steps=50, executor="fake",
                              seed_with="transformer,gla", max_params=200_000)
        monkeypatch.setenv("EINSEARCH_LEASE_TTL", "1")  # heartbeat every 0.25 s; each run takes 1.2 s
        executor = Watching(store, seconds=1.2)
        if loop == "recheck":
            run_search(config, store)
            recheck(store, "s", seeds=2, top=1, executor_obj=executor)
            name = check_name("s")
        else:
            measure_fidelity(config, (20, 60), 3, store, executor=executor)
            (name,) = {s.search.name for s in store.searches()}
        assert executor.seen and all(leased for leased, _ in executor.seen)
        assert all(stale[name] is False for _, stale in executor.seen)
        assert store.get_search(name).status == "finished"
