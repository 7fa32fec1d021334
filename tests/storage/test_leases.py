"""Leases (several drivers on one store): one holder per run, heartbeat, expiry and takeover, stale searches."""
from __future__ import annotations

import time

from einsearch.storage import Store

TASK = "toy-causal:vocab=64,seq=32"


def _run(arch) -> tuple:
    return (arch.hash, TASK, 10, 0)


def test_one_holder_then_takeover_after_expiry(db_url, archs):
    # Seconds; each sleep leaves ttl/3 either side of an expiry. With 0.6, a CI-like run on a busy
    # 2-core machine once found the lease expired right after it was taken over.
    ttl = 1.2
    with Store.open(db_url) as store:
        store.create_search("a", task=TASK, strategy="random")
        store.create_search("b", task=TASK, strategy="random")
        run = _run(archs[0])
        assert store.acquire_lease(run, "driver-a", ttl, search="a")
        assert store.acquire_lease(run, "driver-a", ttl, search="a")  # re-entrant for its holder
        assert not store.acquire_lease(run, "driver-b", ttl, search="b")
        assert store.lease_holder(run) == "driver-a"
        evaluation = store.start_evaluation("a", {"arch": archs[0], "task": TASK, "steps": 10, "seed": 0})
        store.attach_lease(run, "driver-a", evaluation)
        time.sleep(ttl * 2 / 3)
        assert store.heartbeat("driver-a", ttl, search="a") == 1  # renewed: still held past the first expiry
        time.sleep(ttl * 2 / 3)
        assert not store.acquire_lease(run, "driver-b", ttl, search="b")
        time.sleep(ttl * 4 / 3)  # driver-a stops beating (killed): its lease expires and is taken over
        assert store.lease_holder(run) is None
        assert store.acquire_lease(run, "driver-b", 30, search="b", takeover_reason="interrupted: lease expired")
        assert store.lease_holder(run) == "driver-b"
        left = store.evaluation(evaluation)
        assert (left.status, left.error) == ("failed", "interrupted: lease expired")  # nothing stays running
        assert store.heartbeat("driver-a", ttl) == 0  # the dead driver's leases are gone
        store.release_lease(run, "driver-a")  # not its lease any more: no effect
        assert store.lease_holder(run) == "driver-b"
        store.release_lease(run, "driver-b")
        assert store.lease_holder(run) is None and store.acquire_lease(run, "driver-c", 5)
        assert store.release_leases(owner="driver-c") == 1


def test_a_search_without_heartbeat_is_stale(sqlite_url):
    with Store.open(sqlite_url) as store:
        store.create_search("live", task=TASK, strategy="random")
        store.create_search("dead", task=TASK, strategy="random")
        store.set_search_status("live", "running")
        store.set_search_status("dead", "running")
        time.sleep(0.6)
        store.heartbeat("owner", 30, search="live")
        stale = {s.search.name: s.stale for s in store.searches(stale_after_s=0.5)}
        assert stale == {"live": False, "dead": True}
        assert {s.search.name: s.to_dict()["stale"] for s in store.searches()} == {"live": False, "dead": False}
