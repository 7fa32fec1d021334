"""Databases for the storage tests: a SQLite file per test, and a fresh database per test on a real
PostgreSQL server ($EINSEARCH_TEST_PG_URL, as `.ci/run` sets it; otherwise a throwaway cluster
started here with `.ci/postgres.sh` when `initdb` is available; otherwise those tests are skipped)."""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

POSTGRES_SH = Path(__file__).resolve().parents[2] / ".ci" / "postgres.sh"


def _initdb_available() -> bool:
    return shutil.which("initdb") is not None or any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


@pytest.fixture(scope="session")
def pg_server():
    """The URL of a PostgreSQL server's maintenance database (the `postgres` superuser, trusted)."""
    url = os.environ.get("EINSEARCH_TEST_PG_URL")
    if url:
        yield url
        return
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'psycopg[binary]')")
    if not _initdb_available():
        pytest.skip("no PostgreSQL: EINSEARCH_TEST_PG_URL is unset and initdb is not installed "
                    "(.ci/run installs Debian's postgresql and starts one)")
    started = subprocess.run(["bash", str(POSTGRES_SH), "start", "--no-install"], capture_output=True, text=True,
                             timeout=120)
    if started.returncode != 0:
        pytest.skip(f"could not start a throwaway PostgreSQL cluster: {started.stderr.strip()[-300:]}")
    env = dict(line.removeprefix("export ").split("=", 1) for line in started.stdout.splitlines())
    try:
        yield env["EINSEARCH_TEST_PG_URL"]
    finally:
        subprocess.run(["bash", str(POSTGRES_SH), "stop", env["EINSEARCH_TEST_PG_DIR"]], capture_output=True,
                       timeout=60)


@pytest.fixture
def pg_url(pg_server):
    """A new, empty database on the server, dropped after the test."""
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(pg_server)
    name = f"einsearch_test_{uuid.uuid4().hex[:12]}"
    plain = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name is ours (hex), not user input
    yield server.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'einsearch.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """Each test that takes `db_url` runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'einsearch.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def archs():
    """Eight real sampled architectures (a fixed seed) for the toy-causal task."""
    from einsearch import sample

    return sample(8, seed=0, task="toy-causal", max_params=100_000)


def evaluate(store, search, arch, metric, *, params=None, steps=10, seed=0, task="toy-causal:vocab=64,seq=32",
             status="ok", parents=(), op=None, **extra):
    """Start and finish one evaluation the way the search loop will; returns its id."""
    candidate = {"arch": arch, "task": task, "steps": steps, "seed": seed, "parents": list(parents), "op": op}
    eval_id = store.start_evaluation(search, candidate)
    result = {"status": status, "metric_name": "accuracy", "metric": metric, "best_metric": metric,
              "loss": 1.0 - (metric or 0.0), "curve": [[1, 0.0], [steps, metric]], "params": params, **extra}
    store.finish_evaluation(eval_id, result)
    return eval_id


@pytest.fixture
def run_eval():
    return evaluate
