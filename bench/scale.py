"""Scaling benchmark: candidates/hour on a Ray cluster of 1 and of 2 nodes on this machine (one CPU
each, `ray start` processes as in tests/cluster), against the local executor (in the driver, one
thread), and the cost of the multi-driver leases per candidate on PostgreSQL.

Every configuration trains the same candidates (the six baselines on toy-causal, `--steps` steps
each, seed 0) through `run_search`, each into a fresh SQLite database, timed from the first ask to the
last result (cluster start-up excluded: it is reported apart). The lease cost is the store calls a
driver adds per candidate (acquire, the cache re-check, attach, release, a heartbeat) timed on a
throwaway PostgreSQL server (`.ci/postgres.sh`, or $EINSEARCH_TEST_PG_URL). Writes the
"Scale (bench/scale.py)" section of bench/RESULTS.md.

    python bench/scale.py                       # about 5-10 minutes on 2 cores
    python bench/scale.py --steps 10 --results /tmp/x.md
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from einsearch.search.run import SearchConfig, run_search  # noqa: E402
from einsearch.storage import Store  # noqa: E402
from results_md import RESULTS, write_section  # noqa: E402
from tests.cluster.ray_cluster import FAST_HEALTH, RayCluster  # noqa: E402

SECTION = "## Scale (bench/scale.py)"
TASK = "toy-causal:vocab=64,seq=32"
CANDIDATES = 6  # the six baselines, in order: the same work in every configuration


def timed_search(executor: str, workers: int, steps: int, address: str | None = None) -> tuple[float, int]:
    """(seconds, candidates trained ok) for the six baselines through a fresh store."""
    with tempfile.TemporaryDirectory() as tmp, Store.open(f"sqlite:///{tmp}/scale.db") as store:
        config = SearchConfig(name="scale", task=TASK, strategy="evolution:population=8", seed_with="all",
                              budget=CANDIDATES, steps=steps, workers=workers, executor=executor,
                              ray_address=address, keep_weights=0)
        start = time.perf_counter()
        run_search(config, store)
        elapsed = time.perf_counter() - start
        return elapsed, sum(e.status == "ok" for e in store.evaluations("scale"))


def on_cluster(nodes: int, steps: int) -> tuple[float, int, float]:
    """(seconds, ok, cluster start-up seconds) with `nodes` one-CPU nodes."""
    started = time.perf_counter()
    with RayCluster(nodes=nodes, cpus_per_node=1) as cluster:
        up = time.perf_counter() - started
        elapsed, ok = timed_search("ray", nodes, steps, cluster.address)
    return elapsed, ok, up


def pg_url() -> tuple[str, str | None]:
    """A PostgreSQL maintenance URL and the directory of a server started here (None: given)."""
    if os.environ.get("EINSEARCH_TEST_PG_URL"):
        return os.environ["EINSEARCH_TEST_PG_URL"], None
    out = subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh"), "start", "--no-install"], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    env = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    return env["EINSEARCH_TEST_PG_URL"], env["EINSEARCH_TEST_PG_DIR"]


def lease_cost_ms(url: str, runs: int) -> tuple[float, float]:
    """(median, mean) milliseconds of the lease calls per candidate, on a fresh database of `url`'s server."""
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(url)
    plain = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "einsearch_scale"')
        conn.execute('CREATE DATABASE "einsearch_scale"')
    try:
        with Store.open(server.set(database="einsearch_scale").render_as_string(hide_password=False)) as store:
            store.create_search("bench", task=TASK, strategy="random")
            arch = {"text": "net(64, x)", "hash": "0" * 16, "ops": []}
            evaluation = store.start_evaluation("bench", {"arch": arch, "task": TASK, "steps": 1, "seed": 0})
            times = []
            for i in range(runs):
                run = (f"{i:016x}", TASK, 10, 0)
                tick = time.perf_counter()
                store.acquire_lease(run, "bench", 60, search="bench")
                store.cached_evaluation(run[0], TASK, 10, 0)
                store.attach_lease(run, "bench", evaluation)
                store.heartbeat("bench", 60, search="bench")
                store.release_lease(run, "bench")
                times.append(1000 * (time.perf_counter() - tick))
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "einsearch_scale" WITH (FORCE)')
    return statistics.median(times), statistics.mean(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps per candidate")
    parser.add_argument("--lease-runs", type=int, default=200)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.update(FAST_HEALTH)
    torch.set_num_threads(1)  # the local path gets one CPU, as each Ray node does
    per_hour = lambda seconds: 3600 * CANDIDATES / seconds  # noqa: E731

    cold_s, cold_ok = timed_search("local", 1, args.steps)  # pays this process's one-off warm-up
    print(f"local (cold): {cold_s:.1f}s ({cold_ok} ok)", flush=True)
    one_s, one_ok, one_up = on_cluster(1, args.steps)
    print(f"1 node: {one_s:.1f}s ({one_ok} ok), start-up {one_up:.1f}s", flush=True)
    two_s, two_ok, two_up = on_cluster(2, args.steps)
    print(f"2 nodes: {two_s:.1f}s ({two_ok} ok), start-up {two_up:.1f}s", flush=True)
    local_s, local_ok = timed_search("local", 1, args.steps)
    print(f"local (warm): {local_s:.1f}s ({local_ok} ok)", flush=True)
    url, started_dir = pg_url()
    try:
        lease_median, lease_mean = lease_cost_ms(url, args.lease_runs)
    finally:
        if started_dir:
            subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh"), "stop", started_dir], capture_output=True)
    print(f"leases: {lease_median:.2f} ms median, {lease_mean:.2f} ms mean per candidate", flush=True)

    load = os.getloadavg()
    lines = [SECTION, "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores ({platform.processor() or platform.system()}), "
             f"Python {platform.python_version()}, torch {torch.__version__}; "
             f"{datetime.date.today().isoformat()}; 1 torch thread per candidate; load average at the end "
             f"{load[0]:.1f} (the machine was shared: figures are indicative).", "",
             f"The six baselines on `{TASK}`, {args.steps} steps each, seed 0, through `run_search` into a fresh "
             "SQLite store; Ray nodes are `ray start` processes with `--num-cpus 1` on this machine.", "",
             "| path | workers | seconds for 6 | candidates/hour | ok | cluster start-up s |",
             "|---|---|---|---|---|---|",
             f"| local executor (in the driver), first run | 1 | {cold_s:.1f} | {per_hour(cold_s):.0f} | {cold_ok} | - |",
             f"| local executor (in the driver), again | 1 | {local_s:.1f} | {per_hour(local_s):.0f} | {local_ok} | - |",
             f"| Ray cluster, 1 node | 1 | {one_s:.1f} | {per_hour(one_s):.0f} | {one_ok} | {one_up:.1f} |",
             f"| Ray cluster, 2 nodes | 2 | {two_s:.1f} | {per_hour(two_s):.0f} | {two_ok} | {two_up:.1f} |", "",
             f"Cluster path overhead against the local path run again (1 CPU each): "
             f"{(one_s - local_s) / CANDIDATES:+.2f} s per candidate (a worker's first torch import, the task "
             f"round trip, the memory estimate; negative: the Ray path was faster). Speed-up of 2 nodes over 1: "
             f"{one_s / two_s:.2f}x (the two nodes share this machine's cores with the driver).", "",
             f"Leases on PostgreSQL (acquire, cache re-check, attach, release, and a heartbeat counted per "
             f"candidate as an upper bound: a driver beats every 15 s; {args.lease_runs} candidates, loopback "
             f"server): {lease_median:.2f} ms median, {lease_mean:.2f} ms mean per candidate."]
    write_section("\n".join(lines), args.results)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
