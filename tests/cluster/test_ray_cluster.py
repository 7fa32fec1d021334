"""A search against a real two-node Ray cluster on this machine (`ray start --head` and `ray start
--address`, one CPU each): candidates run on both nodes (their node ids are stored and shown), and
when the second node's raylet is killed mid-search, the search still stores exactly its budget, each
candidate lost with the node retried on the head or recorded failed as "node lost"."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from einsearch.storage import Store
from tests.cluster.ray_cluster import ROOT, RayCluster, env

pytestmark = pytest.mark.slow
TASK = "toy-causal:vocab=64,seq=32"
BUDGET = 8


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray")
    try:
        started = RayCluster(nodes=2, cpus_per_node=1).start(timeout=150)
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        pytest.skip(f"cannot start a Ray cluster here: {str(err).splitlines()[0] if str(err) else err}")
    yield started
    started.stop()


def _search(db: str, address: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "einsearch.cli", "search", "--db", db, "--name", "cluster", "--task", TASK,
               "--strategy", "evolution:population=8", "--seed-with", "all", "--budget", str(BUDGET),
               "--steps", "5", "--workers", "2", "--executor", "ray", "--ray-address", address,
               "--cpus-per-candidate", "1", "--keep-weights", "0"]
    return subprocess.Popen(command, env={**env(), "COLUMNS": "200"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_search_on_two_nodes_survives_losing_one(cluster, tmp_path, cli):
    db = f"sqlite:///{tmp_path / 'cluster.db'}"
    search = _search(db, cluster.address)
    try:
        deadline = time.monotonic() + 400
        nodes: set[str] = set()
        while len(nodes) < 2:  # wait until both nodes have trained a candidate
            assert search.poll() is None, search.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "candidates never ran on both nodes"
            time.sleep(1)
            if os.path.exists(tmp_path / "cluster.db"):
                with Store.open(db) as store:
                    nodes = {e.node_id for e in store.evaluations() if e.node_id}
        killed = cluster.kill_raylet(1)  # the second node dies mid-search
        out, _ = search.communicate(timeout=400)
    finally:
        if search.poll() is None:
            search.kill()
    assert search.returncode == 0, out[-3000:]
    with Store.open(db) as store:
        evaluations = store.evaluations("cluster")
        summary = store.searches()[0]
    print("evaluations:", [(e.status, (e.node_id or "-")[:8], e.error) for e in evaluations])
    assert killed > 0 and len(nodes) == 2
    assert summary.completed + summary.failed == BUDGET and summary.running == 0  # nothing dropped
    assert len({e.node_id for e in evaluations if e.status == "ok"}) == 2
    for e in evaluations:
        assert e.status == "ok" or "node lost" in e.error or "worker died" in e.error, e.error
    shown = cli("show", f"e{evaluations[0].id}", "--db", db)
    assert shown.exit_code == 0 and evaluations[0].node_id in shown.output
