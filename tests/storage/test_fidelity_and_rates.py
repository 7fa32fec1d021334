"""Revision 0004 on SQLite and PostgreSQL: each run's learning rate (part of the cache key, shown by
the leaderboard) and the measured rank correlations between step budgets."""
from __future__ import annotations

import pytest

from einsearch.evaluators.types import Candidate, Result
from einsearch.storage import Store, StoreError

TASK = "toy-causal:vocab=64,seq=32"


def _ok(metric: float) -> Result:
    return Result(status="ok", metric_name="accuracy", metric=metric)


def test_rates_are_stored_cached_apart_and_ranked_by_the_best(db_url, archs):
    with Store.open(db_url) as store:
        store.create_search("g", task=TASK, strategy="evolution")
        for lr, metric in ((1e-3, 0.4), (1e-2, 0.7), (None, 0.5)):
            candidate = Candidate(archs[0], TASK, 20, lr=lr)
            store.finish_evaluation(store.start_evaluation("g", candidate), _ok(metric))
        assert [e.lr for e in store.evaluations("g")] == [1e-3, 1e-2, None]
        assert store.cached_result(archs[0].hash, TASK, 20, 0, 1e-2).metric == pytest.approx(0.7)
        assert store.cached_result(archs[0].hash, TASK, 20, 0).metric == pytest.approx(0.5)  # recipe rate
        assert store.cached_result(archs[0].hash, TASK, 20, 0, 3e-3) is None
        cached = store.cached_evaluation(archs[0].hash, TASK, 20, 0, 1e-3)
        hit = store.record_cache_hit("g", Candidate(archs[0], TASK, 20, lr=1e-3), cached.id)
        assert store.evaluation(hit).lr == 1e-3  # a cache hit keeps the rate it reused
        (row,) = store.leaderboard(search="g")
        assert row.score == pytest.approx(0.7) and row.to_dict()["lr"] == 1e-2  # the chosen rate


def test_fidelity_correlations(db_url):
    with Store.open(db_url) as store:
        assert store.fidelity_correlations() == [] and store.fidelity_correlation(TASK, 10, 30) is None
        store.create_search("f", task=TASK, strategy="fidelity")
        first = store.record_fidelity(TASK, 10, 30, 0.25, 8, search="f")
        assert (first.task, first.low_steps, first.high_steps, first.n, first.search) == (TASK, 10, 30, 8, "f")
        latest = store.record_fidelity("toy-causal", 10, 30, 0.75, 8)  # the spec is canonicalised
        store.record_fidelity(TASK, 30, 90, 0.9, 8)
        store.record_fidelity("mqar-tiny", 10, 30, 0.1, 8)
        assert store.fidelity_correlation(TASK, 10, 30) == latest and latest.search is None
        pairs = [(r.low_steps, r.high_steps) for r in store.fidelity_correlations(TASK)]
        assert pairs == [(10, 30), (10, 30), (30, 90)]
        assert len(store.fidelity_correlations()) == 4
        assert first.to_dict()["spearman"] == pytest.approx(0.25)
        for bad in ((30, 10, 0.5, 8), (10, 30, 1.5, 8), (10, 30, float("nan"), 8), (10, 30, 0.5, 1)):
            with pytest.raises(StoreError):
                store.record_fidelity(TASK, *bad)
        with pytest.raises(StoreError, match="no search"):
            store.record_fidelity(TASK, 10, 30, 0.5, 8, search="nope")
