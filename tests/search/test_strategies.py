"""Strategies on the fake evaluator: valid, unique, reproducible, resumable, and better than random."""
import statistics

import optuna
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

from einsearch import check
from einsearch.tasks import get_task
from einsearch.grammar import Limits
from einsearch.search import make_strategy, parse_strategy
from einsearch.search.strategies.evolution import Evolution
from einsearch.evaluators.executor_fake import fake_result
from einsearch.search.pareto import pareto_front

TASK = get_task("toy-causal")
LIMITS = Limits(max_params=200_000)
FAST = ["random", "evolution:population=6,sample_size=3,crossover=0.3", "tpe", "random-optuna", "qmc",
        "nsga2", "nsga2:objective=state", "pcfg-learn:refit_every=4"]

optuna.logging.set_verbosity(optuna.logging.ERROR)


def run(spec, budget, seed=0, fidelity=None, initial=()):
    strategy = make_strategy(spec, TASK, steps=100, seed=seed, limits=LIMITS, fidelity=fidelity, initial=initial)
    candidates = []
    for _ in range(budget):
        candidate = strategy.ask()
        strategy.tell(candidate, fake_result(candidate))
        candidates.append(candidate)
    return strategy, candidates


@pytest.mark.parametrize("spec", FAST)
def test_candidates_are_valid_unique_and_within_budget(spec):
    _, candidates = run(spec, 16)
    hashes = [c.arch.hash for c in candidates]
    assert len(set(hashes)) == len(hashes)
    for c in candidates:
        assert check(c.arch, TASK).params <= LIMITS.max_params
        assert c.steps == 100 and c.task == get_task(TASK).spec


def test_gp_warns_that_it_degrades_and_still_emits_valid_unique_candidates():
    strategy, candidates = run("gp", 12)
    assert "random" in strategy.warning
    assert len({c.arch.hash for c in candidates}) == 12


@pytest.mark.parametrize("spec", ["random", "evolution:population=5", "tpe", "pcfg-learn:refit_every=3"])
def test_same_seed_gives_same_sequence(spec):
    first = [str(c.arch) for c in run(spec, 12, seed=3)[1]]
    second = [str(c.arch) for c in run(spec, 12, seed=3)[1]]
    other = [str(c.arch) for c in run(spec, 12, seed=4)[1]]
    assert first == second
    assert first != other


@pytest.mark.parametrize("spec", ["random", "evolution:population=5,crossover=0.5", "pcfg-learn:refit_every=3"])
def test_replayed_strategy_continues_like_the_original(spec):
    original, candidates = run(spec, 14, seed=1)
    rebuilt = make_strategy(spec, TASK, steps=100, seed=1, limits=LIMITS)
    rebuilt.replay(candidates, [(c, fake_result(c)) for c in candidates])
    assert str(rebuilt.ask().arch) == str(original.ask().arch)


def test_baselines_come_first_and_are_not_repeated():
    from einsearch.grammar import sample

    seeds = sample(2, seed=9, task=TASK, max_params=LIMITS.max_params)
    _, candidates = run("evolution:population=4", 8, initial=seeds + seeds[:1])
    assert [c.arch for c in candidates[:2]] == seeds
    assert [c.op for c in candidates[:2]] == ["baseline", "baseline"]
    assert len({c.arch.hash for c in candidates}) == 8


def test_evolution_children_descend_from_population():
    strategy, candidates = run("evolution:population=5,sample_size=2", 20)
    children = candidates[5:]
    assert all(c.op in ("resample", "hparam", "depth", "crossover") and c.parents for c in children)
    assert "depth" in {c.op for c in children}
    assert isinstance(strategy, Evolution) and len(strategy.population) == 5


def mean_best(spec, budget, seeds):
    return statistics.mean(max(r.metric for r in (fake_result(c) for c in run(spec, budget, seed=s)[1]))
                           for s in seeds)


def test_evolution_and_tpe_beat_random_on_the_same_budget():
    seeds, budget = range(6), 50
    random_best = mean_best("random", budget, seeds)
    assert mean_best("evolution:population=10,sample_size=5", budget, seeds) > random_best
    assert mean_best("tpe", budget, seeds) > random_best


def test_asha_trains_most_candidates_cheaply_and_promotes_the_best():
    strategy, candidates = run("random", 30, fidelity="asha:10,90,3")
    assert strategy.rungs == [10, 30, 90]
    steps = [c.steps for c in candidates]
    assert steps.count(10) > steps.count(30) > steps.count(90) > 0
    keys = [(c.arch.hash, c.steps) for c in candidates]
    assert len(set(keys)) == len(keys)
    low = {c.arch.hash: fake_result(c).metric for c in candidates if c.steps == 10}
    promoted = {c.arch.hash for c in candidates if c.steps == 30}
    assert max(low, key=low.get) in promoted
    assert all(c.op == "promote" and c.parents == (c.arch.hash,) for c in candidates if c.steps > 10)


def test_optuna_study_lives_in_the_database_and_resumes(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = make_strategy("tpe", TASK, steps=100, seed=0, limits=LIMITS, storage=url, study_name="s")
    asked = [first.ask() for _ in range(3)]
    told = [(c, fake_result(c)) for c in asked[:2]]
    for c, r in told:
        first.tell(c, r)
    # A new process: the study is loaded, the running trial reopened and finished on tell.
    second = make_strategy("tpe", TASK, steps=100, seed=0, limits=LIMITS, storage=url, study_name="s")
    second.replay(asked, told)
    second.tell(asked[2], fake_result(asked[2]))
    trials = second.study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert second.ask().arch.hash not in {c.arch.hash for c in asked}


def test_nsga2_front_trades_metric_for_size():
    strategy, candidates = run("nsga2", 16)
    points = [(c, (fake_result(c).metric, -check(c.arch, TASK).params)) for c in candidates]
    front = pareto_front(points)
    assert 0 < len(front) <= len(points)
    best = max(points, key=lambda p: p[1][0])
    smallest = max(points, key=lambda p: p[1][1])
    assert best in front and smallest in front
    assert len(strategy.study.best_trials) >= 1


def test_bad_strategy_names_and_options_are_clear():
    with pytest.raises(ValueError, match="unknown strategy"):
        parse_strategy("annealing")
    with pytest.raises(ValueError, match="population"):
        make_strategy("evolution:population=1", TASK, steps=10)
    with pytest.raises(ValueError, match="asha"):
        make_strategy("random", TASK, steps=10, fidelity="hyperband:1,2")
