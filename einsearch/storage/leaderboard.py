"""The leaderboard query: each architecture's best evaluation (per task), ranked.

All user text reaches SQL as bound parameters (`==`, `startswith(autoescape=True)`, JSON paths).
"""
from __future__ import annotations

from typing import Sequence

from sqlalchemy import Select, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from einsearch.storage.models import Architecture, ArchitectureOp, Evaluation, Search
from einsearch.storage.records import LOWER_IS_BETTER


def task_matches(spec: str):
    """An exact spec ('mqar:seq=64,...') or a bare task name ('mqar', any parameters)."""
    return or_(Evaluation.task == spec, Evaluation.task.startswith(spec + ":", autoescape=True))


def metric_direction(session: Session, metric: str, higher_is_better: bool | None) -> bool:
    """Explicit direction, else that of evaluations whose main metric is `metric`, else by its name."""
    if higher_is_better is not None:
        return higher_is_better
    stored = session.scalar(select(Evaluation.higher_is_better).where(Evaluation.metric_name == metric).limit(1))
    if stored is not None:
        return bool(stored)
    return metric not in LOWER_IS_BETTER


def best_per_architecture(
    session: Session, *, task: str | None = None, search: str | None = None, metric: str | None = None,
    max_params: int | None = None, uses: Sequence[str] = (), top: int | None = 10,
    higher_is_better: bool | None = None,
) -> list[tuple[int, float]]:
    """(evaluation id, value) of the ranked best evaluations, best first. Ties go to fewer params,
    then to the earlier evaluation."""
    params = func.coalesce(Evaluation.params, Architecture.params)
    if metric is None:
        value = Evaluation.metric
        if higher_is_better is None:  # each evaluation's own direction (its task's)
            key = case((Evaluation.higher_is_better, Evaluation.metric), else_=-Evaluation.metric)
        else:
            key = Evaluation.metric if higher_is_better else -Evaluation.metric
    else:
        value = case((Evaluation.metric_name == metric, Evaluation.metric),
                     else_=Evaluation.metrics[metric].as_float())
        key = value if metric_direction(session, metric, higher_is_better) else -value

    conditions = [Evaluation.status == "ok", value.is_not(None)]
    if task is not None:
        conditions.append(task_matches(task))
    if search is not None:
        conditions.append(Evaluation.search_id == select(Search.id).where(Search.name == search).scalar_subquery())
    if max_params is not None:
        conditions.append(params <= max_params)
    for op in uses:
        conditions.append(exists().where(and_(ArchitectureOp.arch_id == Evaluation.arch_id, ArchitectureOp.op == op)))

    order = (key.desc(), params.asc().nulls_last(), Evaluation.id.asc())
    ranked = (
        select(Evaluation.id.label("id"), value.label("value"), key.label("key"), params.label("params"),
               func.row_number().over(partition_by=(Evaluation.arch_id, Evaluation.task), order_by=order).label("rn"))
        .join(Architecture, Architecture.id == Evaluation.arch_id)
        .where(*conditions)
        .subquery()
    )
    query: Select = (select(ranked.c.id, ranked.c.value).where(ranked.c.rn == 1)
                     .order_by(ranked.c.key.desc(), ranked.c.params.asc().nulls_last(), ranked.c.id.asc()))
    if top is not None:
        query = query.limit(top)
    return [(row.id, float(row.value)) for row in session.execute(query)]
