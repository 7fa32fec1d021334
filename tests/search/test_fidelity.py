"""Measured fidelity: the same candidates at several budgets, Spearman's rho stored per pair of
budgets, resumable; ASHA warns when its rungs' stored correlation is low or unmeasured."""
import pytest

from einsearch.errors import UsageError
from einsearch.evaluators.executor_fake import FakeExecutor, fake_result, unit_hash
from einsearch.search.fidelity import correlations, measure_fidelity, parse_budgets, ranks, spearman
from einsearch.search.run import SearchConfig, run_search
from einsearch.search.types import Result
from einsearch.storage.store import Store
from einsearch.tasks import get_task

TASK = get_task("toy-causal")
FOUR = "transformer,gla,mamba,hyena"


@pytest.fixture
def store(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'fidelity.db'}") as opened:
        yield opened


class Scrambled(FakeExecutor):
    """Below `high` steps the score is unrelated to the architecture (a hash of it and the steps)."""

    def __init__(self, high, **kwargs):
        super().__init__(**kwargs)
        self.high = high

    def wait(self, timeout=None):
        if not self.jobs:
            return []
        key = min(self.jobs, key=lambda k: (self.jobs[k][0], k))
        _, candidate = self.jobs.pop(key)
        if candidate.steps >= self.high:
            return [(key, fake_result(candidate))]
        return [(key, Result(status="ok", metric_name="accuracy",
                             metric=unit_hash(f"{candidate.arch.hash}:{candidate.steps}")))]


def config(**kwargs):
    return SearchConfig(name="", task=TASK.spec, executor="fake", max_params=200_000, **kwargs)


def test_spearman_and_ranks():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert ranks([5, 1, 5, 3]) == [3.5, 1.0, 3.5, 2.0]  # ties share their average rank
    assert spearman([1, 2, 3], [7, 7, 7]) is None and spearman([1], [1]) is None
    pairs = correlations({10: {"a": 1, "b": 2, "c": 3}, 30: {"a": 1, "b": 3, "c": 2, "d": 0}, 90: {"a": 1}})
    assert [(low, high, n) for low, high, _, n in pairs] == [(10, 30, 3), (10, 90, 1), (30, 90, 1)]
    assert pairs[0][2] == pytest.approx(0.5) and pairs[1][2] is None  # too few candidates at both budgets


def test_parse_budgets():
    assert parse_budgets("1000,100,300") == (100, 300, 1000)
    for bad in ("100", "100,100", "0,100", "a,b", ""):
        with pytest.raises(UsageError):
            parse_budgets(bad)


def test_measure_stores_every_pair_and_a_second_run_trains_nothing(store):
    executor = FakeExecutor()
    records = measure_fidelity(config(seed_with="transformer,gla,mamba"), (20, 60, 180), 4, store, executor=executor)
    assert executor.submitted == 12  # three baselines and one sampled architecture at each budget
    assert [(r.low_steps, r.high_steps, r.n) for r in records] == [(20, 60, 4), (20, 180, 4), (60, 180, 4)]
    # The fake evaluator scales every architecture alike with steps: the ranking never changes.
    assert all(r.spearman == pytest.approx(1.0) for r in records)
    (run,) = {r.search for r in records}
    evaluations = store.evaluations(run)
    assert len({e.arch_hash for e in evaluations}) == 4 and {e.steps for e in evaluations} == {20, 60, 180}
    assert "attention(" in evaluations[0].arch  # the baseline comes first
    assert [r.id for r in store.fidelity_correlations(TASK.spec)] == [r.id for r in records]
    again = FakeExecutor()
    measure_fidelity(config(seed_with="transformer,gla,mamba"), (20, 60, 180), 4, store, executor=again)
    assert again.submitted == 0  # the same measurement: resumed, nothing left to train
    assert store.fidelity_correlation(TASK.spec, 20, 180).spearman == pytest.approx(1.0)


def test_a_low_budget_that_ranks_at_random_correlates_poorly(store):
    baselines = "transformer,gla,mamba,hyena,baseconv,deltanet,retnet,h3,hgrn2,mamba2"  # no sampling: fast
    records = measure_fidelity(config(seed_with=baselines), (20, 200), 10, store, executor=Scrambled(high=200))
    (record,) = records
    assert (record.low_steps, record.high_steps, record.n) == (20, 200, 10)
    assert record.spearman < 0.5


class StopAfter(FakeExecutor):
    def __init__(self, results, **kwargs):
        super().__init__(**kwargs)
        self.left = results

    def wait(self, timeout=None):
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return super().wait(timeout)


def test_an_interrupted_measurement_resumes(store):
    with pytest.raises(KeyboardInterrupt):
        measure_fidelity(config(workers=2, seed_with=FOUR), (20, 60), 4, store, executor=StopAfter(results=3))
    assert store.fidelity_correlations() == []
    executor = FakeExecutor()
    records = measure_fidelity(config(workers=2, seed_with=FOUR), (20, 60), 4, store, executor=executor)
    assert executor.submitted == 8 - 3 and records[0].n == 4


def _warning(store, fidelity):
    seen = []
    run_search(SearchConfig(name=f"s{len(store.searches())}", task=TASK.spec, strategy="random", budget=2,
                            executor="fake", fidelity=fidelity, max_params=200_000, seed_with="transformer,gla"), store,
               on_strategy=lambda strategy: seen.append(strategy.warning))
    return seen[0]


def test_asha_warns_when_its_rungs_correlate_poorly_or_are_unmeasured(store, caplog):
    assert "unmeasured" in _warning(store, "asha:20,180,3")
    assert "einsearch fidelity" in caplog.text  # logged as well
    store.record_fidelity(TASK.spec, 20, 180, 0.3, 8)
    warning = _warning(store, "asha:20,180,3")
    assert "0.30" in warning and "< 0.5" in warning
    store.record_fidelity(TASK.spec, 20, 180, 0.8, 8)  # the latest measurement counts
    assert _warning(store, "asha:20,180,3") is None
    assert "unmeasured" in _warning(store, "asha:60,180,3")  # another pair of budgets


def test_cli_fidelity_and_show(tmp_path, cli):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    result = cli("fidelity", "--task", "toy-causal", "--budgets", "20,60", "--n", "4", "--executor", "fake",
                 "--seed-with", FOUR, "--max-params", "200k", "--db", db)
    assert result.exit_code == 0, result.output
    shown = cli("fidelity", "--show", "--task", "toy-causal", "--json", "--db", db)
    assert shown.exit_code == 0, shown.output
    import json

    (row,) = [json.loads(line) for line in shown.stdout.splitlines()]
    assert (row["low_steps"], row["high_steps"], row["n"]) == (20, 60, 4) and row["spearman"] == pytest.approx(1.0)
    nothing = cli("fidelity", "--show", "--task", "mqar-tiny", "--db", db)
    assert nothing.exit_code == 0 and "no fidelity measured" in nothing.stdout
    with Store.open(db) as store:
        store.record_fidelity(get_task("toy-causal").spec, 20, 60, 0.1, 4)
    searched = cli("search", "--task", "toy-causal", "--executor", "fake", "--budget", "2", "--fidelity",
                   "asha:20,60,3", "--max-params", "200k", "--db", db)
    assert searched.exit_code == 0, searched.output
    assert "warning:" in searched.output and "correlate poorly" in searched.output
    bad = cli("fidelity", "--task", "toy-causal", "--budgets", "20", "--executor", "fake", "--db", db)
    assert bad.exit_code == 2 and "budgets" in bad.output
    assert cli("fidelity", "--db", db).exit_code == 2
