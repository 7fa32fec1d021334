"""A driver's leases on the runs it trains, with a heartbeat thread (see `einsearch.storage.leases`).

Several `einsearch search` processes on one store each hold a `Leases`: before training a candidate
the loop takes its run's lease; a run leased by another live driver is waited for (its result is
then reused from the store's cache) rather than trained twice. A background thread renews this
driver's leases, and its search's `updated_at`, every quarter of the time to live, so a driver busy
training in-process stays alive to the others; a killed one stops renewing and its leases expire.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from einsearch.search.store import LeaseStore
from einsearch.search.types import Candidate

log = logging.getLogger(__name__)
DEFAULT_TTL_S = 60.0


def default_ttl_s() -> float:
    """$EINSEARCH_LEASE_TTL seconds, else 60 (the store marks searches stale after the same time)."""
    try:
        return max(1.0, float(os.environ.get("EINSEARCH_LEASE_TTL", DEFAULT_TTL_S)))
    except ValueError:
        return DEFAULT_TTL_S


def supports_leases(store: object) -> bool:
    return all(hasattr(store, name) for name in ("acquire_lease", "attach_lease", "release_lease", "heartbeat"))


class Leases:
    def __init__(self, store: LeaseStore, search: str, *, ttl_s: float | None = None,
                 takeover_reason: str = "interrupted: lease expired"):
        self.store, self.search = store, search
        self.ttl_s = ttl_s if ttl_s is not None else default_ttl_s()
        self.takeover_reason = takeover_reason
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, candidate: Candidate) -> bool:
        return self.store.acquire_lease(candidate.key, self.owner, self.ttl_s, search=self.search,
                                        takeover_reason=self.takeover_reason)

    def attach(self, candidate: Candidate, evaluation_id: int) -> None:
        self.store.attach_lease(candidate.key, self.owner, evaluation_id)

    def release(self, candidate: Candidate) -> None:
        self.store.release_lease(candidate.key, self.owner)

    def start(self) -> "Leases":
        self.beat()
        self._thread = threading.Thread(target=self._run, name="einsearch-heartbeat", daemon=True)
        self._thread.start()
        return self

    def beat(self) -> None:
        try:
            self.store.heartbeat(self.owner, self.ttl_s, search=self.search)
        except Exception as err:  # a database hiccup: the next beat may work; leases live ttl_s meanwhile
            log.warning("heartbeat failed: %s", str(err).splitlines()[0] if str(err) else type(err).__name__)

    def _run(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            self.beat()

    def stop(self) -> None:
        """Stop the heartbeat and drop every lease still held (their runs go back to the others)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl_s)
        try:
            self.store.release_leases(owner=self.owner)
        except Exception as err:
            log.warning("leases not released (they expire in %.0f s): %s", self.ttl_s, err)
