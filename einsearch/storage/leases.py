"""Leases: several drivers sharing one store train each run (architecture, task, steps, seed) once.

A driver takes the lease of a run before training it; a second driver wanting the same run finds the
lease held and waits for the result instead. The holder renews its leases (and its search's
`updated_at`) with a heartbeat; a lease not renewed for its time to live belongs to a dead driver
(kill -9, a lost machine) and is taken over, and the evaluation row it left 'running' is closed as
failed with the taker's reason, so nothing stays running forever. Times are naive UTC from each
driver's clock (as every other timestamp of the store): drivers' clocks must roughly agree.
"""
from __future__ import annotations

import hashlib
import logging
import os
from datetime import timedelta
from typing import Any, Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from einsearch.storage.models import Evaluation, Lease, Search, utcnow

log = logging.getLogger(__name__)
DEFAULT_LEASE_TTL_S = 60.0


def lease_ttl_s() -> float:
    """Seconds a lease lives without a heartbeat: $EINSEARCH_LEASE_TTL, else 60."""
    try:
        return max(1.0, float(os.environ.get("EINSEARCH_LEASE_TTL", DEFAULT_LEASE_TTL_S)))
    except ValueError:
        return DEFAULT_LEASE_TTL_S


def lease_key(run: Sequence[Any]) -> str:
    """The lease key of a run: `Candidate.key` (arch_hash, task, steps, seed, lr) hashed to 64 hex digits."""
    return hashlib.sha256("\n".join(str(part) for part in run).encode()).hexdigest()


class LeasesMixin:
    """Store methods for leases (mixed into `Store`: uses its `_write`, `_read` and `_search_id`)."""

    def acquire_lease(self, run: Sequence[Any], owner: str, ttl_s: float, *, search: str | None = None,
                      takeover_reason: str = "interrupted: lease expired") -> bool:
        """Take the lease of `run` for `owner`: True when it was free, expired (taken over) or already
        ours; False while another live driver holds it."""
        key = lease_key(run)

        def work(session: Session) -> bool:
            now = utcnow()
            expires = now + timedelta(seconds=ttl_s)
            row = session.get(Lease, key)
            if row is None:
                session.add(Lease(key=key, owner=owner, search_id=self._search_id(session, search),
                                  acquired_at=now, heartbeat_at=now, expires_at=expires))
                session.flush()  # a concurrent insert of the same key fails here: IntegrityError
                return True
            if row.owner != owner and row.expires_at > now:
                return False
            previous, evaluation = row.owner, row.evaluation_id
            taken = session.execute(
                update(Lease).where(Lease.key == key, Lease.owner == previous, Lease.expires_at == row.expires_at)
                .values(owner=owner, search_id=self._search_id(session, search), evaluation_id=None,
                        acquired_at=now, heartbeat_at=now, expires_at=expires)).rowcount
            if taken != 1:  # someone else took it over between our read and our update
                return False
            if previous != owner:
                log.warning("lease of run %s taken over from %s (expired)", key[:12], previous)
                if evaluation is not None:
                    session.execute(update(Evaluation).where(Evaluation.id == evaluation,
                                                             Evaluation.status == "running")
                                    .values(status="failed", error=takeover_reason, finished_at=now))
            return True

        try:
            return self._write(work, "acquire lease")
        except IntegrityError:  # another driver inserted the same lease first
            return False

    def attach_lease(self, run: Sequence[Any], owner: str, evaluation_id: int) -> None:
        """Name the evaluation row the holder trains under the lease (closed if the lease is taken over)."""
        self._write(lambda s: s.execute(update(Lease).where(Lease.key == lease_key(run), Lease.owner == owner)
                                        .values(evaluation_id=evaluation_id)), "attach lease")

    def release_lease(self, run: Sequence[Any], owner: str) -> None:
        self._write(lambda s: s.execute(delete(Lease).where(Lease.key == lease_key(run), Lease.owner == owner)),
                    "release lease")

    def release_leases(self, *, owner: str | None = None, search: str | None = None) -> int:
        """Drop every lease of `owner` or of `search` (a search being resumed: its old driver is gone)."""
        def work(session: Session) -> int:
            query = delete(Lease)
            if owner is not None:
                query = query.where(Lease.owner == owner)
            if search is not None:
                query = query.where(Lease.search_id == self._search_id(session, search))
            return session.execute(query).rowcount

        return self._write(work, "release leases")

    def heartbeat(self, owner: str, ttl_s: float, *, search: str | None = None) -> int:
        """Renew `owner`'s leases for `ttl_s` seconds and mark its search alive; returns the leases renewed."""
        def work(session: Session) -> int:
            now = utcnow()
            if search is not None:
                session.execute(update(Search).where(Search.name == search).values(updated_at=now))
            return session.execute(update(Lease).where(Lease.owner == owner)
                                   .values(heartbeat_at=now, expires_at=now + timedelta(seconds=ttl_s))).rowcount

        return self._write(work, "heartbeat")

    def lease_holder(self, run: Sequence[Any]) -> str | None:
        """The owner of `run`'s lease while it is live, else None."""
        def work(session: Session) -> str | None:
            row = session.scalar(select(Lease).where(Lease.key == lease_key(run)))
            return row.owner if row is not None and row.expires_at > utcnow() else None

        return self._read(work)
