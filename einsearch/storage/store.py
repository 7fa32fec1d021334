"""`Store`: the only code that talks to the database. Callers get frozen records, never sessions.

Every write is its own committed transaction (an evaluation is durable as soon as its result is
recorded), so a killed process leaves a consistent database: at worst evaluations still marked
'running', which `abandon_running` closes on resume.
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

from sqlalchemy import Engine, case, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, joinedload

import einsearch
from einsearch.evaluators.types import Result
from einsearch.storage import leaderboard
from einsearch.storage.engine import (WRITE_OPTION, StoreError, make_engine, parse_url, sqlite_path,
                                      with_lock_retries)
from einsearch.storage.models import SCHEMA_HEAD, VERSION_TABLE, Architecture, Evaluation, Search, utcnow
from einsearch.storage.records import ArchRecord, EvaluationRecord, LeaderboardRow, SearchRecord, SearchSummary
from einsearch.storage.values import field, finite, result_columns, task_higher_is_better, task_spec, to_result
from einsearch.storage.archs import ArchitecturesMixin
from einsearch.storage.fidelity import FidelityMixin
from einsearch.storage.weights import WeightsMixin
from einsearch.storage.leases import LeasesMixin, lease_ttl_s

log = logging.getLogger(__name__)
T = TypeVar("T")


def _schema_is_head(engine: Engine) -> bool:
    """Whether the database is at this einsearch's schema already (read-only; any doubt says no)."""
    try:
        with engine.connect() as conn:
            return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == SCHEMA_HEAD
    except DBAPIError:  # no version table yet (a new database), or not reachable: the upgrade path says which
        return False
SEARCH_STATUSES = ("created", "running", "finished", "failed", "interrupted")


@lru_cache(maxsize=1)
def code_version() -> str:
    """einsearch's version, plus `git describe` when running from a git checkout."""
    try:
        described = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(einsearch.__file__).parent,
                                   capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return einsearch.__version__
    tag = described.stdout.strip()
    return f"{einsearch.__version__}+{tag}" if described.returncode == 0 and tag else einsearch.__version__


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _rate(lr: Any) -> float | None:
    """A learning rate as stored (a float, or None for the task's recipe rate)."""
    return None if lr is None else float(lr)


def _record_or_none(row: Evaluation | None) -> EvaluationRecord | None:
    return EvaluationRecord.of(row) if row is not None else None


class Store(ArchitecturesMixin, WeightsMixin, LeasesMixin, FidelityMixin):
    """Searches, architectures, evaluations, lineage and weights in one SQLAlchemy database."""

    def __init__(self, url: str, *, artifacts_dir: str | os.PathLike | None = None, create: bool = True):
        self.url = parse_url(url)
        self.where = self.url.render_as_string(hide_password=True)
        db_file = sqlite_path(self.url)
        if db_file is not None:
            if db_file.is_dir():
                raise StoreError(f"{db_file} is a directory, not a database file")
            if not create and not db_file.is_file():
                raise StoreError(f"no database at {db_file} (pass --db or set EINSEARCH_DB)")
            if not db_file.parent.is_dir():
                raise StoreError(f"cannot create database {db_file}: directory {db_file.parent} does not exist")
        if artifacts_dir is None:
            artifacts_dir = os.environ.get("EINSEARCH_ARTIFACTS") or (
                db_file.parent / f"{db_file.stem}_artifacts" if db_file is not None else "einsearch_artifacts")
        self.artifacts_dir = Path(artifacts_dir)
        self._engine = make_engine(self.url)
        self._write_engine = self._engine.execution_options(**{WRITE_OPTION: True})
        try:
            if not _schema_is_head(self._engine):
                from einsearch.storage.migrate import upgrade  # Alembic: only when there is work for it

                upgrade(self._engine, self.where)
        except StoreError:
            self._engine.dispose()
            raise
        except DBAPIError as err:
            self._engine.dispose()
            raise StoreError(f"cannot open database {self.where}: {_first_line(err)}") from None

    @classmethod
    def open(cls, url: str, **kwargs: Any) -> "Store":
        """Open (creating or upgrading the schema as needed) the database at `url`."""
        return cls(url, **kwargs)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions ----------------------------------------------------------------------------
    def _read(self, work: Callable[[Session], T]) -> T:
        with Session(self._engine) as session, session.begin():
            return work(session)

    def _write(self, work: Callable[[Session], T], what: str) -> T:
        def attempt() -> T:
            with Session(self._write_engine) as session, session.begin():
                return work(session)

        return with_lock_retries(attempt, f"{self.where}: {what}")

    # --- searches --------------------------------------------------------------------------------
    def create_search(self, name: str, *, task: Any, strategy: str, config: Mapping[str, Any] | None = None,
                      seed: int = 0, budget: int | None = None, exist_ok: bool = False) -> SearchRecord:
        """A new search; with `exist_ok`, the existing one of that name (to resume it)."""
        spec = task_spec(task)

        def work(session: Session) -> SearchRecord:
            row = session.scalar(select(Search).where(Search.name == name))
            if row is not None:
                if not exist_ok:
                    raise StoreError(f"a search named {name!r} already exists in {self.where}")
                return SearchRecord.of(row)
            row = Search(name=name, task=spec, strategy=strategy, config=finite(dict(config or {})), seed=seed,
                         budget=budget, code_version=code_version(), status="created")
            session.add(row)
            session.flush()
            return SearchRecord.of(row)

        try:
            return self._write(work, "create search")
        except IntegrityError:  # another process created it between our check and our insert
            if not exist_ok:
                raise StoreError(f"a search named {name!r} already exists in {self.where}") from None
            return self.get_search(name)

    def find_search(self, name: str) -> SearchRecord | None:
        def work(session: Session) -> SearchRecord | None:
            row = session.scalar(select(Search).where(Search.name == name))
            return SearchRecord.of(row) if row is not None else None

        return self._read(work)

    def get_search(self, name: str) -> SearchRecord:
        found = self.find_search(name)
        if found is None:
            raise StoreError(f"no search named {name!r} in {self.where}")
        return found

    def set_search_status(self, name: str, status: str) -> None:
        if status not in SEARCH_STATUSES:
            raise StoreError(f"search status must be one of {', '.join(SEARCH_STATUSES)}, got {status!r}")

        def work(session: Session) -> None:
            done = session.execute(update(Search).where(Search.name == name)
                                   .values(status=status, updated_at=utcnow()))
            if done.rowcount == 0:
                raise StoreError(f"no search named {name!r} in {self.where}")

        self._write(work, "set search status")

    def searches(self, stale_after_s: float | None = None) -> list[SearchSummary]:
        """Every search with its evaluation counts, oldest first. A 'running' search whose driver has not
        renewed it (heartbeat) for `stale_after_s` (default: the lease time to live) is marked stale."""
        stale_before = utcnow() - timedelta(seconds=lease_ttl_s() if stale_after_s is None else stale_after_s)
        counts = (select(Evaluation.search_id,
                         func.sum(case((Evaluation.status == "ok", 1), else_=0)).label("ok"),
                         func.sum(case((Evaluation.status == "failed", 1), else_=0)).label("failed"),
                         func.sum(case((Evaluation.status == "running", 1), else_=0)).label("running"),
                         func.count(Evaluation.cached_from).label("cached"))
                  .group_by(Evaluation.search_id).subquery())

        def work(session: Session) -> list[SearchSummary]:
            rows = session.execute(select(Search, counts).outerjoin(counts, counts.c.search_id == Search.id)
                                   .order_by(Search.id))
            return [SearchSummary(SearchRecord.of(r.Search), int(r.ok or 0), int(r.failed or 0),
                                  int(r.running or 0), int(r.cached or 0),
                                  r.Search.status == "running" and r.Search.updated_at < stale_before) for r in rows]

        return self._read(work)

    def _search_id(self, session: Session, search: str | SearchRecord | None) -> int | None:
        if search is None:
            return None
        name = search.name if isinstance(search, SearchRecord) else search
        found = session.scalar(select(Search.id).where(Search.name == name))
        if found is None:
            raise StoreError(f"no search named {name!r} in {self.where}")
        return found

    # --- evaluations -----------------------------------------------------------------------------
    def start_evaluation(self, search: str | SearchRecord | None, candidate: Any, *, report: Any = None,
                         recipe: str | None = None) -> int:
        """Record a candidate (arch, task, steps, seed, parents, op) as running, trained under `recipe` (its
        recipe key); returns the evaluation id. Its architecture and lineage go in the same transaction."""
        task = field(candidate, "task")
        spec, higher = task_spec(task), task_higher_is_better(task)

        def work(session: Session) -> int:
            search_id = self._search_id(session, search)
            arch_row = self._arch_row(session, field(candidate, "arch"), report)
            session.flush()
            parents = field(candidate, "parents") or ()
            if parents:
                self._add_lineage(session, arch_row, parents, field(candidate, "op") or "unknown", search_id,
                                  strict=False)
            row = Evaluation(search_id=search_id, arch_id=arch_row.id, task=spec,
                             steps=int(field(candidate, "steps")), seed=int(field(candidate, "seed", 0) or 0),
                             lr=_rate(field(candidate, "lr")), recipe=recipe, status="running",
                             higher_is_better=higher, metrics={}, curve=[])
            session.add(row)
            session.flush()
            return row.id

        return self._write(work, "start evaluation")

    def finish_evaluation(self, evaluation_id: int, result: Any) -> EvaluationRecord:
        """Store the result of a started evaluation (committed at once)."""
        columns = result_columns(result)

        def work(session: Session) -> EvaluationRecord:
            row = session.get(Evaluation, evaluation_id)
            if row is None:
                raise StoreError(f"no evaluation {evaluation_id} in {self.where}")
            for name, value in columns.items():
                setattr(row, name, value)
            row.finished_at = utcnow()
            session.flush()
            return EvaluationRecord.of(row)

        return self._write(work, "finish evaluation")

    def record_cache_hit(self, search: str | SearchRecord | None, candidate: Any, source_id: int) -> int:
        """Record that `candidate` reused evaluation `source_id`'s result; returns the new evaluation id."""
        def work(session: Session) -> int:
            source = session.get(Evaluation, source_id)
            if source is None:
                raise StoreError(f"no evaluation {source_id} in {self.where}")
            search_id = self._search_id(session, search)
            parents = field(candidate, "parents") or ()
            if parents:
                self._add_lineage(session, source.arch, parents, field(candidate, "op") or "unknown", search_id,
                                  strict=False)
            copied = {c.key: getattr(source, c.key) for c in Evaluation.__table__.columns
                      if c.key not in ("id", "search_id", "created_at", "weights_path", "weights_sha256",
                                       "cached_from")}
            copied["finished_at"] = utcnow()
            row = Evaluation(**copied, search_id=search_id, cached_from=source.cached_from or source.id)
            session.add(row)
            session.flush()
            return row.id

        return self._write(work, "record cache hit")

    def cached_evaluation(self, arch_hash: str, task: Any, steps: int, seed: int, lr: float | None = None,
                          recipe: str | None = None) -> EvaluationRecord | None:
        """The latest successful measurement (not itself a cache hit) of exactly this training run
        (`lr` None: at the task's recipe rate; `recipe` given: trained under that recipe key only)."""
        rate = _rate(lr)
        query = (select(Evaluation).join(Architecture, Architecture.id == Evaluation.arch_id)
                 .where(Architecture.hash == arch_hash, Evaluation.task == task_spec(task), Evaluation.steps == steps,
                        Evaluation.seed == seed, Evaluation.status == "ok", Evaluation.cached_from.is_(None),
                        Evaluation.lr.is_(None) if rate is None else Evaluation.lr == rate,
                        *([] if recipe is None else [Evaluation.recipe == recipe]))
                 .order_by(Evaluation.id.desc()).limit(1)
                 .options(joinedload(Evaluation.arch), joinedload(Evaluation.search)))
        return self._read(lambda s: _record_or_none(s.scalar(query)))

    def cached_result(self, arch_hash: str, task: Any, steps: int, seed: int, lr: float | None = None) -> Result | None:
        """The stored Result of exactly this training run, or None."""
        found = self.cached_evaluation(arch_hash, task, steps, seed, lr)
        return None if found is None else to_result(found)

    def result(self, evaluation_id: int) -> Result:
        """The stored Result of an evaluation."""
        found = self.evaluation(evaluation_id)
        if found.status == "running":
            raise StoreError(f"evaluation {evaluation_id} is still running: it has no result yet")
        return to_result(found)

    def evaluation(self, evaluation_id: int) -> EvaluationRecord:
        query = select(Evaluation).where(Evaluation.id == evaluation_id).options(
            joinedload(Evaluation.arch), joinedload(Evaluation.search))
        found = self._read(lambda s: _record_or_none(s.scalar(query)))
        if found is None:
            raise StoreError(f"no evaluation {evaluation_id} in {self.where}")
        return found

    def evaluations(self, search: str | None = None, *, arch_hash: str | None = None,
                    status: str | None = None) -> list[EvaluationRecord]:
        """Evaluations in the order they started (for resuming and rebuilding a strategy's state)."""
        def work(session: Session) -> list[EvaluationRecord]:
            query = select(Evaluation).options(joinedload(Evaluation.arch), joinedload(Evaluation.search))
            if search is not None:
                query = query.where(Evaluation.search_id == self._search_id(session, search))
            if arch_hash is not None:
                query = query.join(Architecture, Architecture.id == Evaluation.arch_id).where(
                    Architecture.hash == arch_hash)
            if status is not None:
                query = query.where(Evaluation.status == status)
            return [EvaluationRecord.of(row) for row in session.scalars(query.order_by(Evaluation.id))]

        return self._read(work)

    def abandon_running(self, search: str | None = None, reason: str = "interrupted") -> int:
        """Mark evaluations left 'running' (by a killed process) as failed; returns how many."""
        def work(session: Session) -> int:
            query = update(Evaluation).where(Evaluation.status == "running")
            if search is not None:
                query = query.where(Evaluation.search_id == self._search_id(session, search))
            return session.execute(query.values(status="failed", error=reason, finished_at=utcnow())).rowcount

        return self._write(work, "abandon running evaluations")

    # --- leaderboard and look-up -------------------------------------------------------------------
    def leaderboard(self, *, task: str | None = None, search: str | None = None, metric: str | None = None,
                    max_params: int | None = None, uses: Sequence[str] | str = (), top: int | None = 10,
                    higher_is_better: bool | None = None) -> list[LeaderboardRow]:
        """Each architecture's best successful evaluation (per task), best first; ties to fewer params."""
        if top is not None and top < 1:
            raise StoreError(f"--top must be at least 1, got {top}")
        uses = (uses,) if isinstance(uses, str) else tuple(uses)

        def work(session: Session) -> list[LeaderboardRow]:
            ranked = leaderboard.best_per_architecture(
                session, task=task, search=search, metric=metric, max_params=max_params, uses=uses, top=top,
                higher_is_better=higher_is_better)
            rows = session.scalars(select(Evaluation).where(Evaluation.id.in_([i for i, _ in ranked]))
                                   .options(joinedload(Evaluation.arch), joinedload(Evaluation.search))).all()
            by_id = {row.id: EvaluationRecord.of(row) for row in rows}
            return [LeaderboardRow(rank, value, metric or by_id[i].metric_name or "metric", by_id[i])
                    for rank, (i, value) in enumerate(ranked, start=1)]

        return self._read(work)

    def has_metric(self, metric: str) -> bool:
        """Whether any evaluation reports `metric` (as its main metric or beside it)."""
        query = select(Evaluation.id).where(or_(Evaluation.metric_name == metric,
                                                Evaluation.metrics[metric].as_float().is_not(None))).limit(1)
        return self._read(lambda s: s.scalar(query)) is not None

    def metric_names(self) -> list[str]:
        """The main metrics evaluations report, sorted."""
        query = select(Evaluation.metric_name).where(Evaluation.metric_name.is_not(None)).distinct()
        return sorted(self._read(lambda s: list(s.scalars(query))))

    def resolve(self, ref: str) -> EvaluationRecord | ArchRecord:
        """An evaluation id ('12', 'e12' or '#12'), an architecture hash, or a unique hash prefix (4+)."""
        text = ref.strip().lower()
        explicit = re.fullmatch(r"[e#](\d+)", text)
        eval_id = int(explicit.group(1)) if explicit else int(text) if text.isdigit() else None
        prefix = text if not explicit and re.fullmatch(r"[0-9a-f]{4,64}", text) else None

        def work(session: Session) -> list[EvaluationRecord | ArchRecord]:
            found: list[EvaluationRecord | ArchRecord] = []
            if eval_id is not None:
                row = session.scalar(select(Evaluation).where(Evaluation.id == eval_id).options(
                    joinedload(Evaluation.arch), joinedload(Evaluation.search)))
                found += [EvaluationRecord.of(row)] if row is not None else []
            if prefix is not None:
                rows = session.scalars(select(Architecture).where(Architecture.hash.startswith(prefix, autoescape=True))
                                       .order_by(Architecture.hash).limit(3)).all()
                found += [ArchRecord.of(row) for row in rows]
            return found

        found = self._read(work) if eval_id is not None or prefix is not None else []
        if not found:
            raise StoreError(f"{ref!r} is not an evaluation id or architecture hash in {self.where}")
        if len(found) > 1:
            names = ", ".join(f"evaluation {f.id}" if isinstance(f, EvaluationRecord) else f"architecture {f.hash}"
                              for f in found)
            raise StoreError(f"{ref!r} is ambiguous ({names}); use e<ID> for an evaluation or more hash digits")
        return found[0]
