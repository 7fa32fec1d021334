"""The search loop against the real store and the fake executor: async workers, cache, resume."""
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from einsearch.tasks import get_task
from einsearch.evaluators.executor_fake import FakeExecutor
from einsearch.search.loop import INTERRUPTED, SearchLoop
from einsearch.search.run import SearchConfig, run_search
from einsearch.search.registry import make_strategy
from einsearch.grammar import Limits
from einsearch.storage.store import Store

TASK = get_task("toy-causal")


@pytest.fixture
def store(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'search.db'}") as opened:
        yield opened


def loop_for(store, name, budget=10, workers=2, spec="evolution:population=4", executor=None, **kwargs):
    store.create_search(name, task=TASK, strategy=spec, budget=budget)
    strategy = make_strategy(spec, TASK, steps=50, seed=0, limits=Limits(max_params=200_000),
                             fidelity=kwargs.pop("fidelity", None))
    return SearchLoop(strategy, executor or FakeExecutor(), store, task=TASK, search=name, budget=budget, workers=workers,
                      **kwargs)


class CountingExecutor(FakeExecutor):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.most_running = 0

    def submit(self, candidate):
        key = super().submit(candidate)
        self.most_running = max(self.most_running, len(self.jobs))
        return key


def test_every_worker_is_kept_busy_and_the_budget_is_exact(store):
    executor = CountingExecutor()
    progress = loop_for(store, "a", budget=12, workers=3, executor=executor).run()
    assert progress.done == 12 and progress.stopped == "budget"
    assert executor.most_running == 3
    finished = store.evaluations("a")
    assert len(finished) == 12 and all(r.status == "ok" for r in finished)
    assert progress.best == max(r.metric for r in finished)


def test_a_trained_candidate_is_never_trained_twice(store):
    # Random search proposes the same sequence whatever the results, so "second" repeats "first".
    loop_for(store, "first", budget=8, spec="random").run()
    executor = FakeExecutor()
    progress = loop_for(store, "second", budget=8, spec="random", executor=executor).run()
    assert executor.submitted == 0 and progress.cache_hits == 8
    assert [r.cached_from is not None for r in store.evaluations("second")] == [True] * 8


@pytest.mark.parametrize("stored_recipe", ["another recipe's key", None])  # None: a row from before revision 0005
def test_a_result_trained_under_another_recipe_is_trained_again(store, tmp_path, stored_recipe):
    loop_for(store, "first", budget=8, spec="random").run()
    with sqlite3.connect(tmp_path / "search.db") as connection:
        connection.execute("UPDATE evaluations SET recipe = ?", (stored_recipe,))
    executor = FakeExecutor()
    progress = loop_for(store, "second", budget=8, spec="random", executor=executor).run()
    assert executor.submitted == 8 and progress.cache_hits == 0


def test_failures_are_stored_told_and_counted(store):
    executor = FakeExecutor(fail=lambda c: c.arch.dim > 100)
    progress = loop_for(store, "f", budget=10, executor=executor).run()
    failed = [r for r in store.evaluations("f") if r.status == "failed"]
    assert progress.failed == len(failed) > 0 and progress.done == 10


def test_time_limit_stops_asking(store):
    progress = loop_for(store, "t", budget=50, workers=1, executor=FakeExecutor(delay=0.05), time_limit_s=0.3).run()
    assert progress.stopped == "time limit" and 0 < progress.done < 50


def test_same_seed_and_workers_give_the_same_sequence(tmp_path):
    sequences = []
    for run in range(2):
        with Store.open(f"sqlite:///{tmp_path / f'r{run}.db'}") as store:
            loop_for(store, "s", budget=10, workers=2).run()
            sequences.append([r.arch for r in store.evaluations("s")])
    assert sequences[0] == sequences[1]


def test_asha_through_the_loop_trains_each_fidelity_once(store):
    loop_for(store, "h", budget=20, spec="random", fidelity="asha:10,40,2").run()
    keys = [(r.arch_hash, r.steps) for r in store.evaluations("h")]
    assert len(set(keys)) == 20 and {s for _, s in keys} == {10, 20, 40}


def test_search_killed_with_sigkill_resumes_to_exactly_the_budget(tmp_path, cli):
    db = f"sqlite:///{tmp_path / 'kill.db'}"
    command = [sys.executable, "-m", "einsearch.cli", "search", "--task", TASK.spec, "--strategy", "evolution:population=4",
               "--budget", "10", "--workers", "2", "--executor", "fake:0.3", "--max-params", "200k",
               "--name", "k", "--db", db]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = Store.open(db)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if store.find_search("k") and sum(r.status == "ok" for r in store.evaluations("k")) >= 3:
            break
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = {r.id: r.arch_hash for r in store.evaluations("k") if r.status == "ok"}
    assert 3 <= len(before) < 10
    assert any(r.status == "running" for r in store.evaluations("k"))
    result = cli("resume", "k", "--db", db)
    assert result.exit_code == 0, result.output
    records = store.evaluations("k")
    finished = [r for r in records if r.error != INTERRUPTED]
    assert len(finished) == 10 and all(r.status == "ok" for r in finished)
    assert len({(r.arch_hash, r.steps) for r in finished}) == 10
    assert all(store.evaluation(i).arch_hash == h for i, h in before.items())  # none lost
    assert store.get_search("k").status == "finished"
    store.close()


def test_cli_search_with_baselines_and_tpe(tmp_path, cli):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    result = cli("search", "--task", TASK.spec, "--strategy", "evolution:population=4", "--budget", "6",
                 "--executor", "fake", "--seed-with", "transformer,gla", "--max-params", "300k", "--name", "e",
                 "--db", db)
    assert result.exit_code == 0, result.output
    assert "search e: top" in result.stdout
    result = cli("search", "--task", TASK.spec, "--strategy", "tpe", "--budget", "4", "--executor", "fake",
                 "--name", "t", "--db", db, "--max-params", "300k")
    assert result.exit_code == 0, result.output
    with Store.open(db) as store:
        ops = [r.arch for r in store.evaluations("e")[:2]]
        assert "attention(" in ops[0] and "gla(" in ops[1]
        assert len(store.evaluations("t")) == 4
    assert cli("search", "--strategy", "annealing", "--executor", "fake", "--db", db).exit_code == 2
    assert cli("resume", "nope", "--db", db).exit_code == 2
