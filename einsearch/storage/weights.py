"""Trained weights of evaluations: the part of `Store` that keeps safetensors files in its artifacts
directory (file I/O in `artifacts.py`), referenced from the evaluation rows."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from einsearch.storage import artifacts
from einsearch.storage.engine import StoreError
from einsearch.storage.models import Evaluation


class WeightsMixin:
    """Needs from the class it joins: `artifacts_dir`, `evaluation`, `evaluations`, `leaderboard`,
    `_read` and `_write` (all `Store`'s)."""

    artifacts_dir: Path

    def save_weights(self, evaluation_id: int, state_dict: Mapping[str, Any]) -> Path:
        """Save an evaluation's trained weights as safetensors in the artifacts directory."""
        record = self.evaluation(evaluation_id)
        relative = f"eval-{evaluation_id}-{record.arch_hash}.safetensors"
        metadata = {"arch": record.arch, "task": record.task, "evaluation": str(evaluation_id)}
        digest = artifacts.write_weights(self.artifacts_dir / relative, state_dict, metadata)

        def work(session: Session) -> None:
            session.execute(update(Evaluation).where(Evaluation.id == evaluation_id)
                            .values(weights_path=relative, weights_sha256=digest))

        self._write(work, "save weights")
        return self._artifact(relative)

    def _artifact(self, relative: str) -> Path:
        """A path from the database, inside the artifacts directory, or StoreError: a database handed
        to us must not make us read (or prune) files elsewhere."""
        root = self.artifacts_dir.resolve()
        path = (root / relative).resolve()
        if root not in path.parents:
            raise StoreError(f"weights path {relative!r} in the database points outside {root}")
        return path

    def weights_path(self, evaluation_id: int) -> Path | None:
        record = self.evaluation(evaluation_id)
        return None if record.weights_path is None else self._artifact(record.weights_path)

    def load_weights(self, evaluation_id: int) -> dict[str, Any]:
        """The saved weights of an evaluation, verified against the recorded SHA-256."""
        path = self.weights_path(evaluation_id)
        if path is None:
            raise StoreError(f"evaluation {evaluation_id} has no saved weights")
        digest = self._read(lambda s: s.scalar(select(Evaluation.weights_sha256).where(Evaluation.id == evaluation_id)))
        return artifacts.read_weights(path, digest)

    def prune_weights(self, search: str, keep: int) -> list[int]:
        """Delete the weights of a search's evaluations outside its top `keep`; returns their ids."""
        kept = {row.evaluation.id for row in self.leaderboard(search=search, top=keep)} if keep > 0 else set()
        pruned = [e for e in self.evaluations(search) if e.weights_path is not None and e.id not in kept]
        files = [self._artifact(e.weights_path) for e in pruned]

        def work(session: Session) -> None:
            session.execute(update(Evaluation).where(Evaluation.id.in_([e.id for e in pruned]))
                            .values(weights_path=None, weights_sha256=None))

        if pruned:  # the rows first: a crash in between leaves stray files, never rows pointing at nothing
            self._write(work, "prune weights")
        for path in files:
            path.unlink(missing_ok=True)
        return [e.id for e in pruned]
