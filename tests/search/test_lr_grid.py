"""Learning-rate grids: each architecture trained at every rate, scored by its best run; every run
stored and cached by its rate; an interrupted grid resumes with only the missing rates."""
import pytest

from einsearch.errors import UsageError
from einsearch.evaluators.executor_fake import FakeExecutor, fake_result
from einsearch.grammar import Limits
from einsearch.search.loop import INTERRUPTED, SearchLoop
from einsearch.search.lr_grid import LrGrid, parse_lr_grid
from einsearch.search.library import get_baseline
from einsearch.search.registry import make_strategy
from einsearch.search.types import Candidate
from einsearch.storage.store import Store
from einsearch.tasks import get_task

TASK = get_task("toy-causal")
RATES = (1e-3, 3e-3, 1e-2)
BASELINES = ("transformer", "gla", "mamba", "hyena")


@pytest.fixture
def store(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'grid.db'}") as opened:
        yield opened


class Recording:
    """Wraps a strategy's tell to record what it is told."""

    def __init__(self, inner):
        self.inner, self.told = inner, []
        original = inner.tell

        def tell(candidate, result):
            self.told.append((candidate, result))
            original(candidate, result)

        inner.tell = tell


class StopAfter(FakeExecutor):
    """A fake executor whose process 'dies' (KeyboardInterrupt) after `results` results."""

    def __init__(self, results, **kwargs):
        super().__init__(**kwargs)
        self.left = results

    def wait(self, timeout=None):
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return super().wait(timeout)


def grid_loop(store, name, executor, budget=4, workers=2, rates=RATES, create=True):
    if create:
        store.create_search(name, task=TASK, strategy="evolution", budget=budget * len(rates))
    inner = make_strategy("evolution:population=4", TASK, steps=50, seed=0, limits=Limits(max_params=200_000),
                          initial=[get_baseline(name, TASK) for name in BASELINES])  # no sampling: fast
    recording = Recording(inner)
    loop = SearchLoop(LrGrid(inner, rates), executor, store, task=TASK, search=name, budget=budget * len(rates),
                      workers=workers)
    return loop, recording


def test_parse_lr_grid():
    assert parse_lr_grid("1e-3, 3e-3,1e-2") == RATES
    assert parse_lr_grid([0.001, 0.003]) == (0.001, 0.003)
    assert parse_lr_grid(None) == ()
    for bad in ("", "1e-3,abc", "0", "-1e-3", "1e-3,1e-3", "inf"):
        with pytest.raises(UsageError):
            parse_lr_grid(bad)


def test_each_architecture_runs_at_every_rate_and_the_strategy_is_told_its_best_once(store):
    loop, recording = grid_loop(store, "g", FakeExecutor(), budget=4)
    progress = loop.run()
    runs = store.evaluations("g")
    assert progress.done == 12 and len(runs) == 12 and all(r.status == "ok" for r in runs)
    by_arch: dict[str, dict[float, float]] = {}
    for r in runs:
        by_arch.setdefault(r.arch_hash, {})[r.lr] = r.metric
    assert len(by_arch) == 4 and all(set(rates) == set(RATES) for rates in by_arch.values())
    # One combined result per architecture: the best run, with the rate it was trained at.
    assert sorted(c.arch.hash for c, _ in recording.told) == sorted(by_arch)
    for candidate, result in recording.told:
        assert result.metric == max(by_arch[candidate.arch.hash].values())
        assert by_arch[candidate.arch.hash][candidate.lr] == result.metric
    # The fake evaluator gives each architecture its own best rate: not every one wins at the same rate.
    assert len({c.lr for c, _ in recording.told}) > 1


def test_runs_are_cached_by_rate(store):
    grid_loop(store, "first", FakeExecutor(), budget=3)[0].run()
    executor = FakeExecutor()
    progress = grid_loop(store, "again", executor, budget=3)[0].run()  # same sequence: every run cached
    assert executor.submitted == 0 and progress.cache_hits == 9
    executor = FakeExecutor()
    progress = grid_loop(store, "other", executor, budget=3, rates=(1e-3, 2e-3))[0].run()
    assert progress.cache_hits == 3 and executor.submitted == 3  # only the new rate is trained
    first = {(r.arch_hash, r.lr): r.metric for r in store.evaluations("first")}
    other = {(r.arch_hash, r.lr): r.metric for r in store.evaluations("other")}
    assert all(first[key] == value for key, value in other.items() if key in first)
    assert {lr for _, lr in other} == {1e-3, 2e-3}


def test_the_cache_key_and_the_trained_metric_include_the_rate(store):
    from einsearch import sample

    (a,) = sample(1, seed=3, task="toy-causal", max_params=100_000)
    plain, fast = Candidate(a, TASK.spec, 50), Candidate(a, TASK.spec, 50, lr=1e-2)
    assert plain.key != fast.key and Candidate.from_dict(fast.to_dict()) == fast
    assert fake_result(plain).metric != fake_result(fast).metric
    eval_id = store.start_evaluation(None, fast)
    store.finish_evaluation(eval_id, fake_result(fast))
    assert store.cached_result(*fast.key) is not None
    assert store.cached_result(*plain.key) is None and store.cached_result(a.hash, TASK.spec, 50, 0, 3e-3) is None
    with pytest.raises(ValueError):
        Candidate(a, TASK.spec, 50, lr=0)


def test_an_interrupted_grid_reruns_only_the_missing_rates(store):
    loop, _ = grid_loop(store, "r", StopAfter(results=5), budget=4, workers=2)
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    stored = store.evaluations("r")
    before = {(r.arch_hash, r.lr) for r in stored if r.status == "ok"}
    assert len(before) == 5 and sum(r.status == "running" for r in stored) == 2
    started: dict[str, int] = {}
    for r in stored:
        started[r.arch_hash] = started.get(r.arch_hash, 0) + 1
    assert min(started.values()) < len(RATES)  # a grid cut short: one rate was never even started
    executor = FakeExecutor()
    loop, recording = grid_loop(store, "r", executor, budget=4, workers=2, create=False)
    loop.restore()
    progress = loop.run()
    finished = [r for r in store.evaluations("r") if r.error != INTERRUPTED]
    assert progress.done == 12 and executor.submitted == 12 - 5  # nothing finished is trained again
    assert len(finished) == 12 and len({(r.arch_hash, r.lr) for r in finished}) == 12
    assert before <= {(r.arch_hash, r.lr) for r in finished}
    assert {r.lr for r in finished} == set(RATES)
    assert len({c.arch.hash for c, _ in recording.told}) == 4  # each architecture combined exactly once


def test_cli_search_with_an_lr_grid_from_a_config_file(tmp_path, cli):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    config = tmp_path / "grid.toml"
    config.write_text('[search]\ntask = "toy-causal"\nexecutor = "fake"\nbudget = 3\nsteps = 50\n'
                      'max-params = "200k"\nlr_grid = [1e-3, 1e-2]\nname = "cfg"\n')
    result = cli("search", "--config", str(config), "--db", db)
    assert result.exit_code == 0, result.output
    with Store.open(db) as store:
        runs = store.evaluations("cfg")
        assert len(runs) == 6 and {r.lr for r in runs} == {1e-3, 1e-2}
        assert store.get_search("cfg").config["lr_grid"] == "0.001,0.01"
    shown = cli("leaderboard", "--search", "cfg", "--format", "json", "--db", db)
    assert shown.exit_code == 0, shown.output
    import json

    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert len(rows) == 3 and all(row["lr"] in (1e-3, 1e-2) for row in rows)
    bad = cli("search", "--task", "toy-causal", "--executor", "fake", "--lr-grid", "1e-3,fast", "--db", db)
    assert bad.exit_code == 2 and "lr-grid" in bad.output and "fast" in bad.output


def test_evaluate_trains_at_each_rate_and_reports_the_best(cli):
    import json

    task = "toy-causal:vocab=16,seq=16"
    out = cli("evaluate", "transformer", "--task", task, "--steps", "6", "--lr-grid", "1e-4,3e-2", "--json",
              "--device", "cpu")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    runs = data["lr_grid"]
    assert [run["lr"] for run in runs] == [1e-4, 3e-2] and all(run["status"] == "ok" for run in runs)
    best = max(runs, key=lambda run: run["metric"])  # max keeps the first of equal metrics, as the grid does
    assert data["lr"] == best["lr"] and data["metric"] == best["metric"]
    assert runs[0]["loss"] != runs[1]["loss"]  # the rate reaches the trainer
    table = cli("evaluate", "transformer", "--task", task, "--steps", "2", "--lr-grid", "1e-2", "--device", "cpu")
    assert table.exit_code == 0 and "learning-rate grid" in table.stdout
