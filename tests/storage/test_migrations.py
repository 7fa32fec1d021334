"""Alembic: a populated database at the first schema upgrades to head losing nothing; a database from a
newer einsearch is refused untouched."""
from __future__ import annotations

import json
from datetime import datetime

import pytest
from sqlalchemy import text

from einsearch.storage import Store, StoreError
from einsearch.storage.engine import make_engine, parse_url
from einsearch.storage.migrate import current_revision, head_revision, script_directory, upgrade
from einsearch.storage.models import VERSION_TABLE

FIRST = "0001"
NOW = datetime(2026, 1, 2, 3, 4, 5)


def _populate_first_schema(conn, archs) -> None:
    """Rows written the way einsearch at revision 0001 wrote them (plain SQL, bound parameters; ids from the
    database, so PostgreSQL's sequences advance as they did)."""
    search_id = conn.execute(text(
        "INSERT INTO searches (name, task, strategy, config, seed, status, budget, code_version, created_at, "
        "updated_at) VALUES ('old', 'toy-causal:vocab=64,seq=32', 'random', :cfg, 7, 'finished', 3, '0.0.1', :now, "
        ":now) RETURNING id"), {"cfg": json.dumps({"pop": 4}), "now": NOW}).scalar_one()
    arch_ids = []
    for i, arch in enumerate(archs[:3], start=1):
        arch_id = conn.execute(text(
            "INSERT INTO architectures (hash, text, graph_hash, params, flops_per_token, depth, ops, created_at) "
            "VALUES (:hash, :text, :g, :p, 10, 2, :ops, :now) RETURNING id"),
            {"hash": arch.hash, "text": str(arch), "g": arch.graph_hash, "p": 1000 * i,
             "ops": json.dumps(list(arch.ops())), "now": NOW}).scalar_one()
        arch_ids.append(arch_id)
        for op in arch.ops():
            conn.execute(text("INSERT INTO architecture_ops (arch_id, op) VALUES (:id, :op)"), {"id": arch_id, "op": op})
        conn.execute(text(
            "INSERT INTO evaluations (search_id, arch_id, task, steps, seed, status, metric_name, metric, best_metric, "
            "higher_is_better, loss, metrics, curve, params, created_at, finished_at) VALUES (:s, :a, "
            "'toy-causal:vocab=64,seq=32', 50, 0, 'ok', 'accuracy', :m, :m, :hib, 0.5, :metrics, :curve, :p, :now, "
            ":now)"),
            {"s": search_id, "a": arch_id, "m": 0.1 * i, "hib": True, "metrics": json.dumps({"metric": 0.1 * i}),
             "curve": json.dumps([[50, 0.1 * i]]), "p": 1000 * i, "now": NOW})
    conn.execute(text("INSERT INTO lineage (child_id, parent_id, op, search_id, created_at) "
                      "VALUES (:c, :p, 'mutate', :s, :now)"),
                 {"c": arch_ids[1], "p": arch_ids[0], "s": search_id, "now": NOW})


def test_there_is_an_upgrade_path():
    revisions = [r.revision for r in script_directory().walk_revisions()]
    assert revisions[-1] == FIRST and len(revisions) >= 2 and head_revision() == revisions[0]


def test_the_models_name_the_head_revision():
    """Store opens a database at SCHEMA_HEAD without Alembic: a new migration must move it."""
    from einsearch.storage.models import SCHEMA_HEAD

    assert SCHEMA_HEAD == head_revision()


def test_an_old_database_is_upgraded_when_opened(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(parse_url(url))
    upgrade(engine, "test", target=FIRST)
    engine.dispose()
    with Store.open(url) as store:
        store.searches()
    engine = make_engine(parse_url(url))
    with engine.begin() as conn:
        assert current_revision(conn) == head_revision()
    engine.dispose()


def test_upgrade_from_first_schema_loses_nothing(db_url, archs):
    engine = make_engine(parse_url(db_url))
    upgrade(engine, "test", target=FIRST)
    with engine.begin() as conn:
        assert current_revision(conn) == FIRST
        _populate_first_schema(conn, archs)
    engine.dispose()

    with Store.open(db_url) as store:  # upgrades to head on open
        (summary,) = store.searches()
        assert (summary.search.name, summary.search.seed, summary.search.config) == ("old", 7, {"pop": 4})
        assert summary.search.created_at == NOW and summary.completed == 3 and summary.cache_hits == 0
        evals = store.evaluations("old")
        assert [(e.arch_hash, e.metric, e.params, e.steps) for e in evals] == [
            (a.hash, pytest.approx(0.1 * i), 1000 * i, 50) for i, a in enumerate(archs[:3], start=1)]
        assert all(e.cached_from is None and e.curve for e in evals)
        assert [r.evaluation.arch_hash for r in store.leaderboard()] == [a.hash for a in archs[2::-1]]
        for op in archs[0].ops():  # the ops table came through too
            assert archs[0].hash in {r.evaluation.arch_hash for r in store.leaderboard(uses=op)}
        parents, _ = store.lineage(archs[1].hash)
        assert [(p.parent_hash, p.op, p.search) for p in parents] == [(archs[0].hash, "mutate", "old")]
        # The new schema works on the old rows: a cache hit refers to an old evaluation.
        store.record_cache_hit("old", {"arch": archs[0], "task": evals[0].task, "steps": 50, "seed": 0}, evals[0].id)
        assert store.searches()[0].cache_hits == 1
    engine = make_engine(parse_url(db_url))
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    engine.dispose()


def test_newer_schema_is_refused_untouched(db_url, archs, run_eval):
    with Store.open(db_url) as store:
        run_eval(store, None, archs[0], 0.5)
    engine = make_engine(parse_url(db_url))
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = :v"), {"v": "9999_from_the_future"})
    with pytest.raises(StoreError, match="newer than this einsearch") as err:
        Store.open(db_url)
    assert "\n" not in str(err.value)
    with engine.connect() as conn:
        assert current_revision(conn) == "9999_from_the_future"
        assert conn.execute(text("SELECT count(*) FROM evaluations")).scalar() == 1
    engine.dispose()
