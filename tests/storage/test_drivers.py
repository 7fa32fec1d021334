"""Several `einsearch search` processes on one store: each run trained once, a killed driver's lease
taken over, nothing left running, nothing lost or duplicated (PostgreSQL; SQLite in test_sqlite_drivers)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from einsearch.storage import Store

ROOT = Path(__file__).resolve().parents[2]
TASK = "toy-causal:vocab=64,seq=32"


def search_process(db: str, name: str, *, budget: int, executor: str, ttl: float = 60.0,
                   extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """`einsearch search` as its own process; the same seeds (the baselines, in order), so every driver
    asks the same candidates."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EINSEARCH_LEASE_TTL": str(ttl), "COLUMNS": "200"}
    command = [sys.executable, "-m", "einsearch.cli", "search", "--db", db, "--name", name, "--task", TASK,
               "--strategy", "evolution:population=8", "--seed-with", "all", "--seed", "0", "--budget", str(budget), "--steps", "10", "--workers", "1",
               "--executor", executor, "--keep-weights", "0", *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(proc: subprocess.Popen, timeout: float = 180) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-2000:]
    return out


def trained_per_run(store: Store) -> Counter:
    """How many times each run (arch, task, steps, seed) was trained (not reused), successfully."""
    return Counter((e.arch_hash, e.task, e.steps, e.seed) for e in store.evaluations()
                   if e.cached_from is None and e.status == "ok")


@pytest.mark.slow
@pytest.mark.postgres
def test_two_drivers_train_each_shared_candidate_once(pg_url):
    budget = 5
    procs = [search_process(pg_url, name, budget=budget, executor="fake:0.4") for name in ("left", "right")]
    for proc in procs:
        finished(proc)
    with Store.open(pg_url) as store:
        summaries = {s.search.name: s for s in store.searches()}
        assert {n: (s.completed, s.failed, s.running, s.search.status) for n, s in summaries.items()} == {
            "left": (budget, 0, 0, "finished"), "right": (budget, 0, 0, "finished")}
        trained = trained_per_run(store)
        assert len(trained) == budget and set(trained.values()) == {1}  # the same 5 runs, each trained once
        assert sum(s.cache_hits for s in summaries.values()) == budget  # the other driver reused them
        assert len(store.evaluations()) == 2 * budget  # no row lost, none duplicated
        left = sorted(e.arch_hash for e in store.evaluations("left"))
        assert left == sorted(e.arch_hash for e in store.evaluations("right"))


@pytest.mark.slow
@pytest.mark.postgres
def test_a_killed_drivers_lease_is_taken_over_and_resume_requeues(pg_url, cli):
    budget, ttl = 2, 2.0
    first = search_process(pg_url, "killed", budget=budget, executor="fake:20", ttl=ttl)
    try:
        deadline = time.monotonic() + 120
        with Store.open(pg_url) as store:
            while not store.find_search("killed") or not store.evaluations("killed", status="running"):
                assert first.poll() is None and time.monotonic() < deadline, "the first driver never started"
                time.sleep(0.2)
            held = store.evaluations("killed", status="running")[0]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The second driver wants the same first candidate: it waits for the dead driver's lease to expire.
    second = search_process(pg_url, "taker", budget=budget, executor="fake:0.2", ttl=ttl)
    finished(second)
    with Store.open(pg_url) as store:
        left = store.evaluation(held.id)
        assert (left.status, left.error) == ("failed", "interrupted: re-run on resume")
        assert not store.evaluations(status="running")
        assert trained_per_run(store)[(held.arch_hash, held.task, held.steps, held.seed)] == 1
        summaries = {s.search.name: s for s in store.searches(stale_after_s=ttl)}
        assert summaries["killed"].stale and summaries["killed"].search.status == "running"
        assert not summaries["taker"].stale and summaries["taker"].completed == budget
    shown = cli("searches", "--db", pg_url, env={"COLUMNS": "200", "EINSEARCH_LEASE_TTL": str(ttl)})
    assert shown.exit_code == 0 and "stale" in shown.output
    resumed = cli("resume", "killed", "--db", pg_url)
    assert resumed.exit_code == 0, resumed.output
    with Store.open(pg_url) as store:
        summaries = {s.search.name: s for s in store.searches()}
        assert (summaries["killed"].completed, summaries["killed"].search.status) == (budget, "finished")
        assert summaries["killed"].cache_hits == budget  # requeued, and reused what the taker trained
        assert set(trained_per_run(store).values()) == {1} and not store.evaluations(status="running")
        assert len(store.evaluations()) == 2 * budget + 1  # + the interrupted row, kept as failed
