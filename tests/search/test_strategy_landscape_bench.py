"""bench/strategy_landscape.py: the landscape fitted from made-up evaluations, and strategies run on it."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from strategy_landscape import (COMPOSED, Landscape, fit_landscape, main, simulate, stored_heirs,  # noqa: E402
                                summary_row)

from einsearch import parse  # noqa: E402
from einsearch.search.types import Candidate, Result  # noqa: E402
from einsearch.storage.store import Store  # noqa: E402

DELTANET = "net(64, block(pre:rms, deltanet(heads=4, chunk=16)), block(pre:rms, glu(expand=4, act=swish)))"
DELTANET_WIDE = "net(96, block(pre:rms, deltanet(heads=4, chunk=16)), block(pre:rms, glu(expand=4, act=swish)))"
GLA = "net(64, block(pre:rms, gla(heads=4, chunk=64)), block(pre:rms, glu(expand=4, act=swish)))"
GLA_LN = "net(64, block(pre:ln, gla(heads=4, chunk=64)), block(pre:rms, glu(expand=4, act=swish)))"
COMPOSE = "net(64, block(pre:rms, compose(conv(3))))"


def test_rates_are_per_token_mixer_shrunk_toward_the_overall_rate():
    evaluations = [(DELTANET, 1.0), (DELTANET_WIDE, 0.995), (GLA, 0.07), (GLA_LN, 0.3), (COMPOSE, 0.0),
                   (DELTANET, 0.2)]  # a repeat counts once, with its last value
    landscape = fit_landscape(evaluations, threshold=0.99)
    assert landscape.fitted_on == 5 and landscape.base == pytest.approx(1 / 5)
    assert landscape.rates["deltanet"] == pytest.approx((1 + 4 * 0.2) / (2 + 4))  # glu is a channel mixer
    assert landscape.rates["gla"] == pytest.approx((0 + 4 * 0.2) / (2 + 4))
    assert landscape.rates[COMPOSED] == pytest.approx(0.8 / 5)
    assert sorted(landscape.solved) == [0.995] and sorted(landscape.unsolved) == [0.0, 0.07, 0.2, 0.3]


def test_a_draw_is_fixed_per_architecture_and_seed_and_follows_the_rate():
    landscape = Landscape({"deltanet": 1.0, "gla": 0.0}, base=0.5, solved=[0.999], unsolved=[0.06, 0.1],
                          fitted_on=2)
    deltanet, gla = parse(DELTANET), parse(GLA)
    assert all(landscape.metric(deltanet, seed) == 0.999 for seed in range(20))
    assert all(landscape.metric(gla, seed) in (0.06, 0.1) for seed in range(20))
    assert len({landscape.metric(gla, seed) for seed in range(20)}) == 2
    assert landscape.metric(gla, 3) == landscape.metric(gla, 3)


def test_simulated_searches_and_their_row():
    solves_all = Landscape({}, base=1.0, solved=[1.0], unsolved=[0.1], fitted_on=1)
    metrics, heirs = simulate("random", solves_all, "mqar:seq=64,pairs=4,vocab=128", 50, seed=0, budget=3,
                              max_params=None)
    assert metrics == [1.0, 1.0, 1.0] and heirs == []  # random samples have no parents
    metrics, heirs = simulate("evolution:population=2,sample_size=1", solves_all, "mqar:seq=64,pairs=4,vocab=128",
                              50, seed=0, budget=5, max_params=None)
    assert heirs == [True, True, True]  # the three after the initial population are children of solvers
    runs = [[0.1, 0.995, 0.999, 0.2], [0.1, 0.1, 0.1, 0.1]]
    assert summary_row("x", runs, 0.99, [2, 4]) == "| x | 0.50 ± 0.69 | 0.50 ± 0.69 | 0.50 | 1.00 | 2 |"


def test_stored_heirs_follow_the_lineage_of_solvers(tmp_path):
    task = "mqar:seq=64,pairs=4,vocab=128"
    parents = {DELTANET_WIDE: (DELTANET,), GLA_LN: (DELTANET,), COMPOSE: (GLA,)}  # GLA does not solve
    metrics = {DELTANET: 1.0, GLA: 0.2, DELTANET_WIDE: 0.995, GLA_LN: 0.3, COMPOSE: 0.0}
    with Store.open(f"sqlite:///{tmp_path / 'q.db'}") as store:
        for arch, metric in metrics.items():
            candidate = Candidate(arch=arch, task=task, steps=50,
                                  parents=tuple(parse(p).hash for p in parents.get(arch, ())), op="mutate")
            store.finish_evaluation(store.start_evaluation(None, candidate),
                                    Result(status="ok", metric_name="accuracy", metric=metric))
        records = store.evaluations()
        assert sorted(stored_heirs(store, records, 0.99)) == [False, True]


def test_with_heritability_the_mixers_decide_who_can_and_a_coin_who_does():
    landscape = Landscape({"deltanet": 0.25, "gla": 0.0}, base=0.1, solved=[1.0], unsolved=[0.1],
                          fitted_on=2, heritability=0.5)
    siblings = [parse(DELTANET), parse(DELTANET_WIDE)]  # the same token mixers
    solved = {seed: [landscape.metric(arch, seed) == 1.0 for arch in siblings] for seed in range(400)}
    rate = sum(flags[0] for flags in solved.values()) / 400
    assert rate == pytest.approx(0.25, abs=0.06)  # the fitted chance is kept
    heirs = [flags[1] for flags in solved.values() if flags[0]]
    assert sum(heirs) / len(heirs) == pytest.approx(0.5, abs=0.15)  # a sibling of a solver solves at h
    assert not any(landscape.metric(parse(GLA), seed) == 1.0 for seed in range(50))


def test_bad_input_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: no database at .*none\.db"):
        main(["--store", str(tmp_path / "none.db"), "--results", str(tmp_path / "r.md")])
    with Store.open(f"sqlite:///{tmp_path / 'empty.db'}"):
        pass
    with pytest.raises(SystemExit, match=r"^error: .*empty\.db: no finished evaluations of mqar:seq=64,pairs=4"):
        main(["--store", str(tmp_path / "empty.db"), "--task", "mqar:seq=64,pairs=4,vocab=128",
              "--results", str(tmp_path / "r.md")])
    with pytest.raises(SystemExit, match=r"^error: unknown strategy 'bogus'"):
        main(["--store", str(tmp_path / "empty.db"), "--strategies", "random;bogus", "--results", str(tmp_path / "r.md")])
    assert not (tmp_path / "r.md").exists()
