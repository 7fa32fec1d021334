"""The store's records on SQLite and on a real PostgreSQL server (`db_url` runs each test on both)."""
from __future__ import annotations

import math

import pytest

from einsearch.evaluators.types import Candidate, Result
from einsearch.storage import ArchRecord, EvaluationRecord, Store, StoreError

TASK = "toy-causal:vocab=64,seq=32"


def test_search_create_resume_and_counts(db_url, archs, run_eval):
    with Store.open(db_url) as store:
        made = store.create_search("s1", task=TASK, strategy="random", config={"pop": 8}, seed=3, budget=5)
        assert (made.name, made.task, made.strategy, made.seed, made.budget) == ("s1", TASK, "random", 3, 5)
        assert made.config == {"pop": 8} and made.status == "created" and made.code_version
        with pytest.raises(StoreError, match="already exists"):
            store.create_search("s1", task=TASK, strategy="random")
        assert store.create_search("s1", task=TASK, strategy="random", exist_ok=True).id == made.id
        ok = run_eval(store, "s1", archs[0], 0.5)
        run_eval(store, "s1", archs[1], None, status="failed", error="diverged")
        store.start_evaluation("s1", {"arch": archs[2], "task": TASK, "steps": 10, "seed": 0})
        store.record_cache_hit("s1", {"arch": archs[0], "task": TASK, "steps": 10, "seed": 0}, ok)
        store.set_search_status("s1", "running")
        (summary,) = store.searches()
        assert summary.search.status == "running"
        assert (summary.completed, summary.failed, summary.running, summary.cache_hits) == (2, 1, 1, 1)
        with pytest.raises(StoreError, match="status"):
            store.set_search_status("s1", "bogus")
        with pytest.raises(StoreError, match="no search"):
            store.set_search_status("nope", "running")


def test_evaluation_round_trip_and_cache(db_url, archs):
    with Store.open(db_url) as store:
        store.create_search("s", task=TASK, strategy="evolution")
        candidate = Candidate(arch=archs[0], task=TASK, steps=20, seed=1)
        eval_id = store.start_evaluation("s", candidate)
        assert store.evaluation(eval_id).status == "running"
        assert store.cached_result(archs[0].hash, TASK, 20, 1) is None  # running is not a result
        with pytest.raises(StoreError, match="still running"):
            store.result(eval_id)
        result = Result(status="ok", metric_name="accuracy", metric=0.75, best_metric=0.8, loss=float("nan"),
                        curve=[(10, 0.5), (20, 0.75)], params=1234, flops_per_token=99, wall_time_s=1.5,
                        train_time_s=1.2, tokens_per_s=1e4, peak_mem_bytes=2**33, host="h", device="cpu")
        record = store.finish_evaluation(eval_id, result)
        assert (record.status, record.metric, record.best_metric, record.params) == ("ok", 0.75, 0.8, 1234)
        assert record.loss is None  # NaN is stored as missing, the same on both databases
        assert record.peak_mem_bytes == 2**33 and record.curve == [[10, 0.5], [20, 0.75]]
        assert record.arch == str(archs[0]) and record.arch_hash == archs[0].hash and record.search == "s"
        expected = Result.from_dict(result.to_dict())
        assert store.cached_result(*candidate.key) == expected == store.result(eval_id)
        assert store.cached_result(archs[0].hash, TASK, 20, 2) is None  # another seed
        assert store.cached_result(archs[0].hash, TASK, 10, 1) is None  # another fidelity
        assert store.cached_result(archs[0].hash, "toy-classify", 20, 1) is None  # another task
        failed = store.start_evaluation("s", Candidate(arch=archs[1], task=TASK, steps=20, seed=1))
        store.finish_evaluation(failed, Result.failure("loss diverged\nat step 3"))
        assert store.result(failed) == Result(status="failed", error="loss diverged at step 3")
        assert store.cached_result(archs[1].hash, TASK, 20, 1) is None  # failures are not reused
        with pytest.raises(StoreError, match="no evaluation"):
            store.finish_evaluation(10_000, result)


def test_the_cache_matches_the_recipe_key(db_url, archs):
    with Store.open(db_url) as store:
        store.create_search("s", task=TASK, strategy="random")
        candidate = Candidate(arch=archs[0], task=TASK, steps=20, seed=0)
        done = store.start_evaluation("s", candidate, recipe="recipe-a")
        store.finish_evaluation(done, Result(status="ok", metric_name="accuracy", metric=0.5))
        assert store.cached_evaluation(*candidate.key, recipe="recipe-a").id == done
        assert store.cached_evaluation(*candidate.key, recipe="recipe-b") is None  # trained another way
        assert store.cached_evaluation(*candidate.key).id == done  # no recipe asked: any


def test_architecture_ops_and_idempotence(db_url, archs):
    with Store.open(db_url) as store:
        first = store.add_architecture(archs[0], report={"params": 10, "flops_per_token": 20, "depth": 3})
        again = store.add_architecture(str(archs[0]))  # the string parses to the same architecture
        assert first == again and first.ops == archs[0].ops() and first.params == 10
        assert store.get_architecture(archs[0].hash).text == str(archs[0])
        with pytest.raises(StoreError, match="not an architecture"):
            store.add_architecture("net(64, nosuch(")


def test_lineage(db_url, archs):
    with Store.open(db_url) as store:
        store.create_search("s", task=TASK, strategy="evolution")
        store.start_evaluation("s", {"arch": archs[2], "task": TASK, "steps": 5, "seed": 0,
                                     "parents": [archs[0], archs[1]], "op": "crossover"})
        store.add_lineage(archs[3], [archs[2].hash], "mutate:swap_mixer", search="s")
        store.add_lineage(archs[3], [archs[2].hash], "mutate:swap_mixer", search="s")  # recorded once
        parents, children = store.lineage(archs[2].hash)
        assert sorted(p.parent_hash for p in parents) == sorted([archs[0].hash, archs[1].hash])
        assert {p.op for p in parents} == {"crossover"} and parents[0].search == "s"
        assert [(c.child_hash, c.op) for c in children] == [(archs[3].hash, "mutate:swap_mixer")]
        with pytest.raises(StoreError, match="no parent"):
            store.add_lineage(archs[4], ["0123456789abcdef"], "mutate")
        # recording a candidate never fails on lineage: the unknown parent's edge is skipped, the known one kept
        store.start_evaluation("s", Candidate(arch=archs[5], task=TASK, steps=5, parents=("0123456789abcdef",
                                                                                         archs[0].hash), op="mutate"))
        assert [p.parent_hash for p in store.lineage(archs[5].hash)[0]] == [archs[0].hash]


def test_resolve(db_url, archs, run_eval):
    with Store.open(db_url) as store:
        eval_id = run_eval(store, None, archs[0], 0.5)
        assert isinstance(store.resolve(str(eval_id)), EvaluationRecord)
        assert store.resolve(f"e{eval_id}").id == eval_id
        found = store.resolve(archs[0].hash[:6].upper())
        assert isinstance(found, ArchRecord) and found.hash == archs[0].hash
        for bad in ("zzzz", "99999", "e99999", "", "'; drop table evaluations; --"):
            with pytest.raises(StoreError, match="not an evaluation id"):
                store.resolve(bad)
        assert len(store.evaluations()) == 1  # nothing was dropped


def test_resolve_ambiguous_prefix(sqlite_url):
    with Store.open(sqlite_url) as store:
        for suffix in ("aa", "bb"):
            store.add_architecture({"text": f"net(64, x{suffix})", "hash": f"abcd{suffix}0000000000", "ops": []})
        with pytest.raises(StoreError, match="ambiguous"):
            store.resolve("abcd")
        assert store.resolve("abcdaa").hash == "abcdaa0000000000"


def test_abandon_running_and_resume_order(db_url, archs, run_eval):
    with Store.open(db_url) as store:
        store.create_search("s", task=TASK, strategy="random")
        first = run_eval(store, "s", archs[0], 0.1)
        store.start_evaluation("s", {"arch": archs[1], "task": TASK, "steps": 10, "seed": 0})
    with Store.open(db_url) as store:  # a new process after a crash
        assert store.abandon_running("s") == 1
        evals = store.evaluations("s")
        assert [e.status for e in evals] == ["ok", "failed"] and evals[0].id == first
        assert evals[1].error == "interrupted"
        assert [e.id for e in store.evaluations("s", status="ok")] == [first]


def test_bad_urls_are_one_line_store_errors(tmp_path):
    unreachable = "postgresql+psycopg://postgres:secret@127.0.0.1:1/nothing"  # nothing listens on port 1
    for url in ("not a url", "nosuchdb://x/y", f"sqlite:///{tmp_path}/missing/dir/x.db", unreachable):
        with pytest.raises(StoreError) as err:
            Store.open(url)
        assert "\n" not in str(err.value) and "secret" not in str(err.value)
    with pytest.raises(StoreError, match="no database"):
        Store.open(f"sqlite:///{tmp_path}/absent.db", create=False)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database file at all" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Store.open(f"sqlite:///{garbage}")


def test_lives_beside_optuna(db_url):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(db_url)
    study = optuna.create_study(storage=storage, study_name="beside")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    with Store.open(db_url) as store:  # our migrations ignore optuna's tables and version table
        store.create_search("s", task=TASK, strategy="optuna")
    assert len(optuna.load_study(study_name="beside", storage=db_url).trials) == 2


def test_infinities_are_not_stored_as_json_tokens(db_url, archs, run_eval):
    with Store.open(db_url) as store:
        eval_id = run_eval(store, None, archs[0], 0.2, extra_metric=float("inf"))
        assert store.evaluation(eval_id).metrics["extra_metric"] is None
        assert math.isclose(store.evaluation(eval_id).metric, 0.2)
