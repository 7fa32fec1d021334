"""A database written at the previous schema revision (committed: fixtures/schema_0001.db, remade by
fixtures/make_schema_0001.py) opens, upgrades to the head with Alembic, and loses nothing: every row of
every table keeps every value, and the store reads and extends it."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from einsearch.storage import Store
from einsearch.storage.engine import make_engine, parse_url
from einsearch.storage.migrate import current_revision, head_revision, script_directory
from einsearch.storage.models import VERSION_TABLE

FIXTURE = Path(__file__).parent / "fixtures" / "schema_0001.db"


def _dump(path: Path) -> dict[str, dict[tuple, dict]]:
    """table -> primary key -> row (column -> value), read with plain sqlite3."""
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "AND name NOT LIKE 'sqlite_%'")]
        out = {}
        for table in tables:
            keys = [r["name"] for r in db.execute(f"PRAGMA table_info('{table}')") if r["pk"]]
            out[table] = {tuple(row[k] for k in keys): dict(row) for row in db.execute(f"SELECT * FROM '{table}'")}
    return out


@pytest.fixture
def old_db(tmp_path) -> Path:
    copy = tmp_path / "old.db"
    shutil.copyfile(FIXTURE, copy)  # the committed file is never opened for writing
    return copy


def test_fixture_is_at_an_older_revision_than_head():
    with make_engine(parse_url(f"sqlite:///{FIXTURE}")).connect() as conn:
        revision = current_revision(conn)
    older = [r.revision for r in script_directory().walk_revisions()][1:]
    assert revision == "0001" and revision in older and revision != head_revision()


def test_upgrade_keeps_every_row_and_value(old_db):
    before = _dump(old_db)
    assert sum(len(rows) for rows in before.values()) > 20  # the fixture has something to lose
    with Store.open(f"sqlite:///{old_db}"):
        pass
    after = _dump(old_db)
    assert after[VERSION_TABLE] == {(head_revision(),): {"version_num": head_revision()}}
    for table, rows in before.items():
        if table == VERSION_TABLE:
            continue
        assert after[table].keys() == rows.keys(), table
        for key, row in rows.items():
            assert {k: after[table][key][k] for k in row} == row, (table, key)
    assert all(row["cached_from"] is None for row in after["evaluations"].values())  # the new column


def test_upgraded_store_reads_and_extends_the_old_rows(old_db):
    with Store.open(f"sqlite:///{old_db}") as store:
        summaries = {s.search.name: s for s in store.searches()}
        assert set(summaries) == {"evo", "rnd"}
        assert (summaries["evo"].completed, summaries["evo"].failed, summaries["rnd"].running) == (3, 1, 1)
        assert summaries["evo"].search.config["strategy"] == "evolution:population=4"
        evals = store.evaluations("evo")
        assert [e.status for e in evals] == ["ok", "ok", "failed", "ok"]
        assert evals[2].error == "non-finite loss (nan) at step 3"
        assert [tuple(point) for point in evals[1].curve] == [(25, 0.285), (50, 0.57)]
        board = store.leaderboard(top=None)
        assert [round(r.score, 2) for r in board] == [0.57, 0.41, 0.35]  # best per architecture and task
        assert {r.evaluation.arch_hash for r in store.leaderboard(uses="mamba")} == {evals[1].arch_hash}
        parents, _ = store.lineage(evals[3].arch_hash)
        assert sorted(p.op for p in parents) == ["crossover", "crossover"]
        # the new schema on old rows: a cache hit of an old evaluation, a killed driver's row abandoned
        store.record_cache_hit("rnd", {"arch": evals[0].arch, "task": evals[0].task, "steps": 50, "seed": 0},
                               evals[0].id)
        assert store.abandon_running("rnd", reason="interrupted") == 1
        assert {s.search.name: s.cache_hits for s in store.searches()} == {"evo": 0, "rnd": 1}
