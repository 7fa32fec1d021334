"""Recheck: a search's best architectures trained again on more training seeds, ranked by the mean; stored,
cached and resumable like any search."""
import statistics

import pytest

from einsearch.errors import UsageError
from einsearch.evaluators.executor_fake import FakeExecutor, fake_result
from einsearch.search.recheck import check_name, recheck
from einsearch.search.run import SearchConfig, run_search
from einsearch.search.types import Candidate
from einsearch.storage.store import Store
from einsearch.tasks import get_task

TASK = get_task("toy-causal")


class Counting(FakeExecutor):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.asked = []

    def submit(self, candidate):
        self.asked.append(candidate)
        return super().submit(candidate)


@pytest.fixture
def store(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'recheck.db'}") as opened:
        run_search(SearchConfig(name="s", task=TASK.spec, strategy="random", budget=6, steps=50, executor="fake",
                                seed_with="transformer,gla,mamba", max_params=200_000, train_seed=4), opened)
        yield opened


def expected(arch, seed):
    """The fake evaluator's score of `arch` at the search's steps on one training seed."""
    return fake_result(Candidate(arch, TASK.spec, 50, seed)).metric


def test_the_top_architectures_are_trained_on_the_next_seeds_and_ranked_by_the_mean(store):
    rows = recheck(store, "s", seeds=3, top=3)
    assert len(rows) == 3
    best = sorted((r for r in store.evaluations("s")), key=lambda r: -r.metric)[:3]
    assert {r.arch for r in rows} == {r.arch for r in best}
    for row in rows:
        assert list(row.runs) == [4, 5, 6]  # the search's training seed, then the next two
        arch = next(r for r in best if r.arch == row.arch)
        assert row.runs[4] == arch.metric and row.evaluation == arch.id
        for seed in (5, 6):
            assert row.runs[seed] == pytest.approx(expected(arch_of(arch), seed))
        assert row.mean == pytest.approx(statistics.mean(row.runs.values()))
    assert [r.mean for r in rows] == sorted((r.mean for r in rows), reverse=True)
    checked = store.evaluations(check_name("s"))
    assert len(checked) == 6 and {r.seed for r in checked} == {5, 6}
    assert store.get_search(check_name("s")).status == "finished"


def arch_of(record):
    from einsearch.grammar import parse

    return parse(record.arch)


def test_running_it_again_trains_only_what_is_missing(store):
    first = recheck(store, "s", seeds=3, top=2)
    again = Counting()
    assert recheck(store, "s", seeds=3, top=2, executor_obj=again) == first
    assert again.asked == []
    more = Counting()
    rows = recheck(store, "s", seeds=4, top=2, executor_obj=more)
    assert sorted((c.seed for c in more.asked)) == [7, 7]  # only the new seed
    assert all(list(row.runs) == [4, 5, 6, 7] for row in rows)


def test_named_architectures_and_bad_requests(store):
    records = store.evaluations("s")
    worst = min(records, key=lambda r: r.metric)
    rows = recheck(store, "s", seeds=2, archs=[worst.arch])
    assert [r.arch for r in rows] == [worst.arch]
    with pytest.raises(UsageError, match="not among search 's'"):
        recheck(store, "s", seeds=2, archs=["net(32, block(pre:rms, glu(expand=2, act=swish)))"])
    with pytest.raises(UsageError, match="--seeds must be >= 2"):
        recheck(store, "s", seeds=1)


def test_a_failed_run_leaves_no_mean_and_ranks_last(store):
    best = max(store.evaluations("s"), key=lambda r: r.metric)
    failing = FakeExecutor(fail=lambda c: c.arch.hash == best.arch_hash and c.seed == 6)
    rows = recheck(store, "s", seeds=3, top=3, executor_obj=failing)
    assert rows[-1].arch == best.arch and rows[-1].runs[6] is None
    assert rows[-1].mean is None and not rows[-1].complete
    assert all(r.complete for r in rows[:-1])


class Interrupting(FakeExecutor):
    """Ctrl-C after the first result, with other runs still going."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.results = 0

    def wait(self, timeout=None):
        if self.results:
            raise KeyboardInterrupt
        self.results += 1
        return super().wait(timeout)


def test_an_interrupted_recheck_resumes(store):
    with pytest.raises(KeyboardInterrupt):
        recheck(store, "s", seeds=3, top=2, executor_obj=Interrupting(), workers=2)
    assert store.get_search(check_name("s")).status == "interrupted"
    rows = recheck(store, "s", seeds=3, top=2)
    assert all(row.complete and list(row.runs) == [4, 5, 6] for row in rows)
    finished = [r for r in store.evaluations(check_name("s")) if r.status == "ok"]
    assert sorted((r.arch_hash, r.seed) for r in finished) == sorted(
        {(r.arch_hash, r.seed) for r in finished})  # every run finished once
    assert len(finished) == 4
