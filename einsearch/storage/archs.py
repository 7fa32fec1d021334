"""Architectures and their lineage: the part of `Store` that records architectures (idempotent by
hash, safe under concurrent inserts) and the mutation/crossover edges between them."""
from __future__ import annotations

import logging
from typing import Any, Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from einsearch.storage.engine import StoreError
from einsearch.storage.models import Architecture, ArchitectureOp, Lineage, Search
from einsearch.storage.records import ArchRecord, LineageRecord
from einsearch.storage.values import arch_values

log = logging.getLogger(__name__)


class ArchitecturesMixin:
    """Needs from the class it joins: `where`, `_read`, `_write` and `_search_id` (all `Store`'s)."""

    def _arch_row(self, session: Session, arch: Any, report: Any = None) -> Architecture:
        """Get or create the architecture's row (safe when another process inserts it concurrently)."""
        values = arch_values(arch, report)
        row = session.scalar(select(Architecture).where(Architecture.hash == values.hash))
        if row is None:
            try:
                with session.begin_nested():
                    row = Architecture(hash=values.hash, text=values.text, graph_hash=values.graph_hash,
                                       ops=list(values.ops), params=values.params,
                                       flops_per_token=values.flops_per_token, depth=values.depth,
                                       op_rows=[ArchitectureOp(op=op) for op in values.ops])
                    session.add(row)
            except IntegrityError:
                row = session.scalar(select(Architecture).where(Architecture.hash == values.hash))
        elif row.params is None and values.params is not None:  # a check report arrived later
            row.params, row.flops_per_token, row.depth = values.params, values.flops_per_token, values.depth
        return row

    def add_architecture(self, arch: Any, report: Any = None) -> ArchRecord:
        """Record an architecture (an `Arch`, its string, or a dict of its values); idempotent by hash."""
        return self._write(lambda s: ArchRecord.of(self._arch_row(s, arch, report)), "add architecture")

    def get_architecture(self, arch_hash: str) -> ArchRecord:
        def work(session: Session) -> ArchRecord | None:
            row = session.scalar(select(Architecture).where(Architecture.hash == arch_hash))
            return ArchRecord.of(row) if row is not None else None

        found = self._read(work)
        if found is None:
            raise StoreError(f"no architecture {arch_hash!r} in {self.where}")
        return found

    def _add_lineage(self, session: Session, child: Architecture, parents: Sequence[Any], op: str,
                     search_id: int | None, strict: bool = True) -> None:
        """Edges child <- each parent. A parent given by an unknown hash is an error when `strict`;
        otherwise (recording a candidate) the edge is skipped with a warning: lineage never stops a search."""
        for parent in parents:
            parent_row = self._parent_row(session, parent)
            if parent_row is None:
                if strict:
                    raise StoreError(f"lineage: no parent architecture {parent!r} in {self.where}")
                log.warning("lineage of %s: parent %r is not in the database; edge not recorded", child.hash, parent)
                continue
            edge = (Lineage.child_id == child.id, Lineage.parent_id == parent_row.id, Lineage.op == op,
                    Lineage.search_id.is_(None) if search_id is None else Lineage.search_id == search_id)
            if session.scalar(select(Lineage.id).where(*edge)) is None:
                session.add(Lineage(child_id=child.id, parent_id=parent_row.id, op=op, search_id=search_id))

    def _parent_row(self, session: Session, parent: Any) -> Architecture | None:
        if isinstance(parent, str) and "(" not in parent:  # a hash
            return session.scalar(select(Architecture).where(Architecture.hash == parent))
        return self._arch_row(session, parent)

    def add_lineage(self, child: Any, parents: Sequence[Any], op: str, search: str | None = None) -> None:
        """Record that `op` (a mutation or crossover) made `child` from `parents` (Archs, strings or hashes)."""
        def work(session: Session) -> None:
            child_row = self._arch_row(session, child)
            session.flush()
            self._add_lineage(session, child_row, parents, op, self._search_id(session, search))

        self._write(work, "add lineage")

    def lineage(self, arch_hash: str) -> tuple[list[LineageRecord], list[LineageRecord]]:
        """(edges to the architecture's parents, edges to its children)."""
        def work(session: Session) -> tuple[list[LineageRecord], list[LineageRecord]]:
            arch_id = session.scalar(select(Architecture.id).where(Architecture.hash == arch_hash))
            rows = session.scalars(select(Lineage).where((Lineage.child_id == arch_id) | (Lineage.parent_id == arch_id))
                                   .order_by(Lineage.id)).all()
            hashes = dict(session.execute(select(Architecture.id, Architecture.hash).where(
                Architecture.id.in_({r.child_id for r in rows} | {r.parent_id for r in rows}))).all())
            names = dict(session.execute(select(Search.id, Search.name)).all()) if rows else {}
            records = [(r, LineageRecord(hashes[r.child_id], hashes[r.parent_id], r.op, names.get(r.search_id)))
                       for r in rows]
            return ([rec for r, rec in records if r.child_id == arch_id],
                    [rec for r, rec in records if r.parent_id == arch_id])

        return self._read(work)
