"""Multi-objective search: objectives by name, non-dominated sorting and crowding, Pareto-rank
selection in evolution, nsga2 over any objectives, `leaderboard --pareto`."""
import json

import pytest

from einsearch.errors import UsageError
from einsearch.grammar import Limits, check
from einsearch.search.library import get_baseline
from einsearch.search.objectives import maximised, objective_vector, parse_objectives
from einsearch.search.pareto import crowding_distance, dominates, non_dominated_sort, pareto_order
from einsearch.search.registry import make_strategy
from einsearch.search.run import SearchConfig, run_search
from einsearch.search.types import Result
from einsearch.storage.store import Store
from einsearch.tasks import get_task

TASK = get_task("toy-causal")
SIX = ("transformer", "gla", "mamba", "hyena", "deltanet", "baseconv")


@pytest.fixture
def store(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'mo.db'}") as opened:
        yield opened


def test_parse_objectives():
    assert parse_objectives("accuracy,state,params", TASK) == ("metric", "state", "params")
    assert parse_objectives(" metric , flops ") == ("metric", "flops")
    assert parse_objectives(f"{TASK.metric},params", TASK) == ("metric", "params")
    for bad in ("accuracy", "state,params", "accuracy,speed", "accuracy,state,state", ""):
        with pytest.raises(UsageError):
            parse_objectives(bad, TASK)


def test_maximised_signs_the_metric_and_negates_costs():
    values = {"metric": 0.5, "state": 100, "params": 2000, "flops": None}
    assert maximised(values, ("metric", "state", "params")) == (0.5, -100.0, -2000.0)
    assert maximised(values, ("metric", "flops"), higher_is_better=False) == (-0.5, float("-inf"))


def test_non_dominated_sort_and_crowding():
    points = [(1.0, -5.0), (0.5, -1.0), (0.9, -4.0), (0.4, -3.0), (0.8, -4.5), (0.3, -6.0)]
    fronts = non_dominated_sort(points)
    assert fronts == [[0, 1, 2], [3, 4], [5]]
    for rank, front in enumerate(fronts):  # nothing in a front dominates another of it; earlier fronts dominate
        assert not any(dominates(points[i], points[j]) for i in front for j in front)
        for j in front:
            assert rank == 0 or any(dominates(points[i], points[j]) for i in fronts[rank - 1])
    distance = crowding_distance(points, fronts[0])
    assert distance[0] == distance[1] == float("inf") and 0 < distance[2] < float("inf")
    order = pareto_order(points)
    assert sorted(range(len(points)), key=lambda i: order[i])[:3] == [0, 1, 2]


def test_pareto_order_puts_infeasible_points_last_least_violating_first():
    # (accuracy, -state): the two non-learners have the smallest state, so unconstrained they sit on the front.
    points = [(0.99, -3000.0), (0.95, -2000.0), (0.02, 0.0), (0.10, -10.0), (0.60, -500.0)]
    assert {i for i, key in enumerate(pareto_order(points)) if key[0] == 0} == {0, 1, 2, 3, 4}
    floor = 0.5
    order = pareto_order(points, [max(0.0, floor - p[0]) for p in points])
    ranked = sorted(range(len(points)), key=lambda i: order[i])
    assert set(ranked[:3]) == {0, 1, 4} and ranked[3:] == [3, 2]


def test_evolution_metric_floor_keeps_non_learners_from_parenting():
    def run(floor):
        extra = {"objectives": ("metric", "state")} | ({"metric_floor": floor} if floor is not None else {})
        strategy = make_strategy("evolution:population=6,sample_size=6", TASK, steps=50, seed=0,
                                 limits=Limits(max_params=200_000), extra=extra,
                                 initial=[get_baseline(name, TASK) for name in SIX])
        candidates = [strategy.ask() for _ in range(6)]
        learners = {get_baseline(name, TASK).hash for name in ("transformer", "deltanet")}
        for candidate in candidates:  # only attention and DeltaNet learn; the rest stay at chance
            metric = 0.9 if candidate.arch.hash in learners else 0.01
            strategy.tell(candidate, Result(status="ok", metric_name="accuracy", metric=metric))
        return {strategy.ask().parents[0] for _ in range(6)}, learners

    parents, learners = run(None)
    assert not parents <= learners  # unconstrained, the cheap non-learners win on state
    parents, learners = run(0.5)
    assert parents <= learners
    with pytest.raises(UsageError, match="metric_floor must be a number"):
        make_strategy("evolution:metric_floor=high", TASK, steps=50, seed=0, extra={"objectives": ("metric", "state")})


def test_evolution_metric_floor_samples_fresh_until_a_member_reaches_it():
    """One objective: a population all on a plateau holds nothing to breed from, so children are fresh
    samples (no parent) until a member reaches the floor; then only such members are parents."""
    strategy = make_strategy("evolution:population=6,sample_size=2", TASK, steps=50, seed=0,
                             limits=Limits(max_params=200_000), extra={"metric_floor": 0.5},
                             initial=[get_baseline(name, TASK) for name in SIX])

    def tell(candidate, metric):
        strategy.tell(candidate, Result(status="ok", metric_name="accuracy", metric=metric))

    for candidate in [strategy.ask() for _ in range(6)]:
        tell(candidate, 0.25)
    for _ in range(4):  # everything below the floor: fresh samples, which also stay on the plateau
        child = strategy.ask()
        assert child.parents == () and child.op == "sample"
        tell(child, 0.25)
    learner = strategy.ask()
    tell(learner, 0.9)
    children = [strategy.ask() for _ in range(8)]
    assert all(child.parents and child.op != "sample" for child in children)
    # sample_size 2 of 6 would often draw two plateau members without the floor
    assert {child.parents[0] for child in children} == {learner.arch.hash}


def test_evolution_metric_floor_auto_sits_a_third_of_the_way_from_the_plateau_and_a_lower_one_warns():
    def floor(spec):
        return make_strategy("evolution:metric_floor=auto", get_task(spec), steps=50).metric_floor

    assert floor("mqar:seq=64,pairs=4,vocab=128") == pytest.approx(0.5)
    assert floor("mqar:seq=64,pairs=16,vocab=128") == pytest.approx(0.375)
    assert make_strategy("evolution:metric_floor=auto", get_task("mqar-cpu"), steps=50).warning is None
    low = make_strategy("evolution:metric_floor=0.2", get_task("mqar:seq=64,pairs=4,vocab=128"), steps=50)
    assert "not above mqar:seq=64,pairs=4,vocab=128,random_fill=False's plateau (0.25)" in low.warning
    with pytest.raises(UsageError, match="metric_floor=auto needs a task with a plateau.*icl-regression"):
        make_strategy("evolution:metric_floor=auto", get_task("icl-regression"), steps=50)


def test_evolution_metric_floor_with_objectives_breeds_from_the_least_short():
    """With objectives, a floor no member reaches (all baselines short of "solved") still breeds: the
    closest to the floor ranks first among the infeasible."""
    strategy = make_strategy("evolution:population=6,sample_size=6", TASK, steps=50, seed=0,
                             limits=Limits(max_params=200_000),
                             extra={"objectives": ("metric", "state"), "metric_floor": 0.9},
                             initial=[get_baseline(name, TASK) for name in SIX])
    candidates = [strategy.ask() for _ in range(6)]
    for i, candidate in enumerate(candidates):
        strategy.tell(candidate, Result(status="ok", metric_name="accuracy", metric=0.1 * i))
    assert {strategy.ask().parents[0] for _ in range(4)} == {candidates[-1].arch.hash}


def test_objective_vector_uses_the_decoding_state_size():
    arch = get_baseline("transformer", TASK)
    report = check(arch, TASK)
    vector = objective_vector(arch, 0.7, TASK, ("metric", "state", "params"))
    assert vector == (0.7, -float(report.state_size), -float(report.params))
    assert objective_vector(arch, None, TASK, ("metric", "state")) is None


def test_evolution_selects_parents_by_pareto_rank():
    strategy = make_strategy("evolution:population=6,sample_size=6", TASK, steps=50, seed=0,
                             limits=Limits(max_params=200_000), extra={"objectives": ("metric", "state", "params")},
                             initial=[get_baseline(name, TASK) for name in SIX])
    for i, candidate in enumerate([strategy.ask() for _ in range(6)]):  # the initial population
        strategy.tell(candidate, Result(status="ok", metric_name="accuracy", metric=0.1 * i))
    vectors = [values for _, values in strategy.population]
    front = {strategy.population[i][0].hash for i in non_dominated_sort(vectors)[0]}
    assert len(front) < 6  # some members are dominated
    for _ in range(4):  # every member contends (sample_size = population): the parent is on the front
        child = strategy.ask()
        assert child.parents and child.parents[0] in front


def test_nsga2_and_evolution_search_three_objectives(store):
    for strategy in ("nsga2", "evolution:population=4"):
        name = strategy.partition(":")[0]
        captured = []
        run_search(SearchConfig(name=name, task=TASK.spec, strategy=strategy, budget=5, executor="fake",
                                max_params=200_000, objectives="accuracy,state,params", seed_with="transformer,gla"),
                   store, on_strategy=captured.append)
        assert captured[0].objectives == ("metric", "state", "params")
        assert sum(r.status == "ok" for r in store.evaluations(name)) == 5
    nsga2 = make_strategy("nsga2", TASK, steps=50, limits=Limits(max_params=200_000),
                          extra={"objectives": ("metric", "state", "params")})
    assert len(nsga2.study.directions) == 3
    candidate = nsga2.ask()
    nsga2.tell(candidate, Result(status="ok", metric_name="accuracy", metric=0.4))
    report = check(candidate.arch, TASK)
    (trial,) = nsga2.study.get_trials()
    assert trial.values == [0.4, report.state_size, report.params]
    with pytest.raises(UsageError, match="one objective"):
        run_search(SearchConfig(name="tpe", task=TASK.spec, strategy="tpe", budget=2, executor="fake",
                                objectives="accuracy,params"), store)


def test_nsga2_generations_follow_its_population():
    def generations(spec: str, trials: int) -> list[int]:
        strategy = make_strategy(spec, TASK, steps=50, limits=Limits(max_params=200_000))
        for i in range(trials):
            candidate = strategy.ask()
            strategy.tell(candidate, Result(status="ok", metric_name="accuracy", metric=i / trials))
        return [t.system_attrs["NSGAIISampler:generation"] for t in strategy.study.get_trials()]

    assert generations("nsga2:population=4", 10) == [0] * 4 + [1] * 4 + [2] * 2
    assert set(generations("nsga2", 21)) == {0, 1}  # 20 by default, not Optuna's 50
    with pytest.raises(UsageError, match="population >= 2"):
        make_strategy("nsga2:population=1", TASK, steps=50)
    with pytest.raises(UsageError, match="has no population"):
        make_strategy("tpe:population=8", TASK, steps=50)


def test_leaderboard_pareto_lists_exactly_the_non_dominated(tmp_path, cli):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    result = cli("search", "--task", "toy-causal", "--executor", "fake", "--budget", "10", "--max-params", "200k",
                 "--strategy", "evolution:population=4", "--objectives", "accuracy,state,params", "--db", db)
    assert result.exit_code == 0, result.output
    every = [json.loads(line) for line in cli("leaderboard", "--format", "json", "--top", "100", "--db", db)
             .stdout.splitlines()]
    front = [json.loads(line) for line in cli("leaderboard", "--pareto", "--format", "json", "--db", db)
             .stdout.splitlines()]
    vector = {row["arch_hash"]: (row["value"], -row["state_size"], -row["params"]) for row in every}
    expected = {h for h, v in vector.items() if not any(dominates(o, v) for o in vector.values())}
    assert {row["arch_hash"] for row in front} == expected and 0 < len(front) < len(every)
    assert [row["rank"] for row in front] == list(range(1, len(front) + 1))
    two = [json.loads(line) for line in cli("leaderboard", "--pareto", "--objectives", "accuracy,params",
                                            "--format", "json", "--db", db).stdout.splitlines()]
    assert [row["params"] for row in two] == sorted(row["params"] for row in two)[::-1]  # best metric costs most
    bad = cli("leaderboard", "--pareto", "--objectives", "accuracy,speed", "--db", db)
    assert bad.exit_code == 2 and "speed" in bad.output
    rejected = cli("search", "--task", "toy-causal", "--executor", "fake", "--strategy", "random", "--objectives",
                   "accuracy,state", "--db", db)
    assert rejected.exit_code == 2 and "nsga2 or evolution" in rejected.output
