"""Measured fidelity: the part of `Store` that keeps Spearman's rank correlation between the
rankings of the same candidates at two step budgets (written by `einsearch fidelity`, read by
multi-fidelity searches to warn when a low budget does not predict the high one)."""
from __future__ import annotations

import math

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from einsearch.storage.engine import StoreError
from einsearch.storage.models import FidelityCorrelation
from einsearch.storage.records import FidelityRecord
from einsearch.storage.values import task_spec


class FidelityMixin:
    """Needs from the class it joins: `where`, `_read`, `_write` and `_search_id` (all `Store`'s)."""

    def record_fidelity(self, task: object, low_steps: int, high_steps: int, spearman: float, n: int,
                        search: str | None = None) -> FidelityRecord:
        """Store one measured correlation between the rankings at `low_steps` and `high_steps`."""
        if not 1 <= low_steps < high_steps:
            raise StoreError(f"fidelity: need 1 <= low_steps < high_steps, got {low_steps} and {high_steps}")
        if not (math.isfinite(spearman) and -1.0 - 1e-9 <= spearman <= 1.0 + 1e-9) or n < 2:
            raise StoreError(f"fidelity: a correlation in [-1, 1] over n >= 2 candidates, got {spearman} over {n}")
        spec = task_spec(task)

        def work(session: Session) -> FidelityRecord:
            row = FidelityCorrelation(task=spec, low_steps=int(low_steps), high_steps=int(high_steps),
                                      spearman=float(spearman), n=int(n), search_id=self._search_id(session, search))
            session.add(row)
            session.flush()
            session.refresh(row, ["search"])
            return FidelityRecord.of(row)

        return self._write(work, "record fidelity")

    def fidelity_correlations(self, task: object | None = None) -> list[FidelityRecord]:
        """Every stored correlation (of `task` only, when given), oldest first."""
        query = select(FidelityCorrelation).options(joinedload(FidelityCorrelation.search))
        if task is not None:
            query = query.where(FidelityCorrelation.task == task_spec(task))
        query = query.order_by(FidelityCorrelation.id)
        return self._read(lambda session: [FidelityRecord.of(row) for row in session.scalars(query)])

    def fidelity_correlation(self, task: object, low_steps: int, high_steps: int) -> FidelityRecord | None:
        """The latest measured correlation on `task` between exactly these two budgets, or None."""
        found = [r for r in self.fidelity_correlations(task) if (r.low_steps, r.high_steps) == (low_steps, high_steps)]
        return found[-1] if found else None
