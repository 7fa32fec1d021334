"""A search with --train-seeds N: each candidate trained on N seeds and told (and stored as) their mean; the
per-seed values beside it; cached apart from one-seed runs; recheck builds on the seeds it has."""
import json
import statistics

import pytest

from einsearch.evaluators.executor_fake import fake_result
from einsearch.grammar import parse
from einsearch.search.recheck import check_name, recheck
from einsearch.search.run import SearchConfig, run_search
from einsearch.search.types import Candidate
from einsearch.storage.store import Store
from einsearch.tasks import get_task

TASK = get_task("toy-causal")
STEPS = 50


def config(name, train_seeds, budget=5, **more):
    return SearchConfig(name=name, task=TASK.spec, strategy="random", budget=budget, steps=STEPS, executor="fake",
                        seed_with="transformer,gla", max_params=200_000, train_seed=2, train_seeds=train_seeds,
                        **more)


def one_seed(arch, seed):
    """The fake evaluator's score of `arch` on one training seed (its own formula, not the code under test)."""
    return fake_result(Candidate(parse(arch), TASK.spec, STEPS, seed)).metric


@pytest.fixture
def store(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'seeds.db'}") as opened:
        yield opened


def test_each_candidate_is_scored_by_its_mean_over_the_seeds(store):
    progress = run_search(config("three", 3), store)
    records = store.evaluations("three")
    assert len(records) == 5 and progress.done == 5
    for record in records:
        values = [one_seed(record.arch, seed) for seed in (2, 3, 4)]
        assert record.seed == 2 and record.metric == pytest.approx(statistics.mean(values))
        extra = record.metrics["extra_metrics"]
        assert [extra[f"accuracy_seed{s}"] for s in (2, 3, 4)] == pytest.approx(values)
    assert progress.best == pytest.approx(max(r.metric for r in records))  # what the strategy was told
    assert store.get_search("three").config["train_seeds"] == 3


def test_several_seeds_are_cached_apart_from_one(store):
    run_search(config("three", 3, budget=2), store)  # the two baselines
    again = run_search(config("three-again", 3, budget=2), store)
    assert again.cache_hits == 2
    single = run_search(config("one", 1, budget=2), store)
    assert single.cache_hits == 0  # a mean of three seeds does not answer for one seed
    assert [r.metric for r in store.evaluations("one")] == pytest.approx(
        [one_seed(r.arch, 2) for r in store.evaluations("one")])


def test_recheck_counts_the_search_seeds_and_trains_only_the_next(store):
    run_search(config("three", 3), store)
    rows = recheck(store, "three", seeds=4, top=2)
    checked = store.evaluations(check_name("three"))
    assert {r.seed for r in checked} == {5} and len(checked) == 2
    for row in rows:
        assert list(row.runs) == [2, 3, 4, 5] and row.own_seeds == 3
        assert list(row.runs.values()) == pytest.approx([one_seed(row.arch, s) for s in (2, 3, 4, 5)])
    fewer = recheck(store, "three", seeds=2, top=2)  # the search already has three: nothing to train
    assert [list(r.runs) for r in fewer] == [[2, 3, 4]] * 2
    assert len(store.evaluations(check_name("three"))) == 2


def test_cli_train_seeds_option_config_key_and_headline(tmp_path, cli):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    toml = tmp_path / "seeds.toml"
    toml.write_text('[search]\ntask = "toy-causal"\nexecutor = "fake"\nbudget = 2\nsteps = 50\n'
                    'seed-with = "transformer,gla"\ntrain-seeds = 2\nname = "cfg"\n')
    result = cli("search", "--config", str(toml), "--db", db)
    assert result.exit_code == 0, result.output
    with Store.open(db) as store:
        assert all(set(r.metrics["extra_metrics"]) == {"accuracy_seed0", "accuracy_seed1"}
                   for r in store.evaluations("cfg"))
    shown = cli("search", "--task", "toy-causal", "--executor", "fake", "--budget", "3", "--steps", "50",
                "--seed-with", "transformer,gla", "--train-seeds", "2", "--name", "flag", "--db", db)
    assert shown.exit_code == 0, shown.output
    assert "each the mean of 2 training seeds" in " ".join(shown.output.split())
    board = cli("leaderboard", "--search", "flag", "--format", "json", "--db", db)
    rows = [json.loads(line) for line in board.stdout.splitlines()]
    with Store.open(db) as store:
        means = {r.id: r.metric for r in store.evaluations("flag")}
    assert rows and all(row["value"] == pytest.approx(means[row["evaluation"]]) for row in rows)
    bad = cli("search", "--task", "toy-causal", "--executor", "fake", "--train-seeds", "0", "--db", db)
    assert bad.exit_code == 2 and bad.stderr.strip() == "error: --train-seeds: must be >= 1"
