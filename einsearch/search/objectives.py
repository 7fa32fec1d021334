"""Objectives of a multi-objective search (`--objectives accuracy,state,params`): the task's metric
and costs of the architecture, each as a number to maximise (costs negated).

Names: `metric` (also `accuracy`, `score` or the task's own metric name: the task's main metric, in
its direction), `state` (decoding-state size per sequence at the task's length, `check().state_size`),
`params`, `flops` (per token).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from einsearch.errors import UsageError
from einsearch.tasks import Task

COSTS = {"state": "state_size", "params": "params", "flops": "flops_per_token"}  # objective -> Report field
METRIC_ALIASES = ("metric", "accuracy", "score")
NAMES = ("metric",) + tuple(COSTS)
MULTI_OBJECTIVE_STRATEGIES = ("nsga2", "evolution")
_REPORTS: dict[tuple[str, str], Any] = {}  # (arch hash, task spec) -> check Report
_MAX_REPORTS = 20_000


def parse_objectives(text: str | Sequence[str], task: Task | None = None) -> tuple[str, ...]:
    """'accuracy,state,params' -> ('metric', 'state', 'params'): at least two, the metric among them."""
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else [str(p).strip() for p in text]
    metric_names = set(METRIC_ALIASES) | ({task.metric.lower()} if task is not None and task.metric else set())
    names: list[str] = []
    for part in filter(None, parts):
        name = "metric" if part.lower() in metric_names else part.lower()
        if name not in NAMES:
            raise UsageError(f"objectives: unknown objective {part!r}; choose from accuracy (the task's metric), "
                             f"{', '.join(COSTS)}")
        if name in names:
            raise UsageError(f"objectives: {part!r} is given twice")
        names.append(name)
    if len(names) < 2 or "metric" not in names:
        raise UsageError(f"objectives: give the task's metric and at least one cost, e.g. accuracy,state,params; "
                         f"got {text!r}")
    return tuple(names)


def check_objectives(names: Sequence[str]) -> tuple[str, ...]:
    """Names already parsed (a strategy's `objectives` option): each known, the metric among them."""
    names = tuple(names)
    if any(n not in NAMES for n in names) or len(set(names)) != len(names) or "metric" not in names or len(names) < 2:
        raise UsageError(f"objectives must be distinct names among {', '.join(NAMES)} with 'metric' and a cost, "
                         f"got {names!r}")
    return names


def costs(arch: Any, task: Task) -> dict[str, float | None]:
    """The architecture's costs by objective name (from `check`, cached per architecture and task)."""
    key = (arch.hash, task.spec)
    report = _REPORTS.get(key)
    if report is None:
        from einsearch.grammar import check

        if len(_REPORTS) >= _MAX_REPORTS:
            _REPORTS.clear()
        report = _REPORTS[key] = check(arch, task)
    return {name: getattr(report, field) for name, field in COSTS.items()}


def maximised(values: Mapping[str, float | None], names: Sequence[str],
              higher_is_better: bool = True) -> tuple[float, ...]:
    """`values` (objective name -> raw value: the metric, state, params, flops) as numbers to maximise:
    the metric signed by its direction, costs negated; a missing value is the worst possible."""
    out = []
    for name in names:
        value = values.get(name)
        if value is None:
            out.append(float("-inf"))
        elif name == "metric":
            out.append(float(value) if higher_is_better else -float(value))
        else:
            out.append(-float(value))
    return tuple(out)


def objective_vector(arch: Any, metric: float | None, task: Task, names: Sequence[str]) -> tuple[float, ...] | None:
    """An evaluated architecture's objectives to maximise; None when it has no metric (a failure)."""
    if metric is None:
        return None
    return maximised({"metric": metric, **costs(arch, task)}, names, task.higher_is_better)
