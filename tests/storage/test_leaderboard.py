"""Leaderboard: best evaluation per architecture, ranking direction, ties, filters."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from einsearch.storage import Store, StoreError

TASK = "toy-causal:vocab=64,seq=32"


def test_best_per_architecture_ranked_with_fidelity(db_url, archs, run_eval):
    with Store.open(db_url) as store:
        store.create_search("s", task=TASK, strategy="random")
        run_eval(store, "s", archs[0], 0.30, params=500, steps=10)
        best0 = run_eval(store, "s", archs[0], 0.90, params=500, steps=100)  # same arch, higher fidelity
        best1 = run_eval(store, "s", archs[1], 0.60, params=500)
        run_eval(store, "s", archs[2], None, status="failed")  # failures never rank
        board = store.leaderboard()
        assert [(r.rank, r.evaluation.id, r.score) for r in board] == [(1, best0, 0.90), (2, best1, 0.60)]
        assert board[0].evaluation.steps == 100 and board[0].metric_name == "accuracy"
        assert [r.evaluation.id for r in store.leaderboard(top=1)] == [best0]
        with pytest.raises(StoreError, match="top"):
            store.leaderboard(top=0)


def test_ties_go_to_fewer_params(db_url, archs, run_eval):
    with Store.open(db_url) as store:
        big = run_eval(store, None, archs[0], 0.5, params=9000)
        small = run_eval(store, None, archs[1], 0.5, params=100)
        middle = run_eval(store, None, archs[2], 0.5, params=4000)
        assert [r.evaluation.id for r in store.leaderboard()] == [small, middle, big]


def test_lower_is_better_tasks(db_url, archs):
    lm = SimpleNamespace(spec="lm:vocab=8", higher_is_better=False)  # a task whose metric is a loss
    with Store.open(db_url) as store:
        ids = []
        for arch, value in zip(archs[:3], (2.5, 1.5, 3.5)):
            eval_id = store.start_evaluation(None, {"arch": arch, "task": lm, "steps": 10, "seed": 0})
            store.finish_evaluation(eval_id, {"status": "ok", "metric_name": "loss", "metric": value})
            ids.append(eval_id)
        assert [r.score for r in store.leaderboard(task="lm")] == [1.5, 2.5, 3.5]
        assert [r.score for r in store.leaderboard(task="lm", higher_is_better=True)] == [3.5, 2.5, 1.5]


def test_filters(db_url, archs, run_eval):
    with Store.open(db_url) as store:
        store.create_search("a", task=TASK, strategy="random")
        store.create_search("b", task=TASK, strategy="random")
        in_a = run_eval(store, "a", archs[0], 0.9, params=90_000)
        in_b = run_eval(store, "b", archs[1], 0.8, params=1_000)
        other_task = run_eval(store, "b", archs[2], 0.99, params=1_000, task="toy-classify:vocab=64,seq=32")
        assert [r.evaluation.id for r in store.leaderboard(search="a")] == [in_a]
        assert [r.evaluation.id for r in store.leaderboard(max_params=50_000)] == [other_task, in_b]
        assert [r.evaluation.id for r in store.leaderboard(task="toy-causal")] == [in_a, in_b]
        assert [r.evaluation.id for r in store.leaderboard(task=TASK)] == [in_a, in_b]
        assert store.leaderboard(task="toy") == []  # a name prefix is not a task
        assert store.leaderboard(search="nosuch") == []
        for op in archs[1].ops():
            assert in_b in {r.evaluation.id for r in store.leaderboard(uses=op)}
        shared = set(archs[0].ops()) & set(archs[1].ops())
        expected = {i for i, a in ((in_a, archs[0]), (in_b, archs[1]), (other_task, archs[2]))
                    if set(a.ops()) >= shared | {archs[1].ops()[0]}}
        got = {r.evaluation.id for r in store.leaderboard(uses=sorted(shared | {archs[1].ops()[0]}))}
        assert got == expected
        assert store.leaderboard(uses="no_such_mixer") == []
        assert store.leaderboard(uses="x' OR '1'='1") == []  # bound parameters, not SQL text


def test_rank_by_another_metric(db_url, archs, run_eval):
    with Store.open(db_url) as store:
        # run_eval stores loss = 1 - metric; 'loss' is lower-is-better by name
        worse = run_eval(store, None, archs[0], 0.2, params=10)
        better = run_eval(store, None, archs[1], 0.7, params=10)
        board = store.leaderboard(metric="loss")
        assert [r.evaluation.id for r in board] == [better, worse]
        assert board[0].metric_name == "loss" and board[0].score == pytest.approx(0.3)
        assert store.leaderboard(metric="no_such_metric") == []
