"""Turn what callers hand the store (Arch, check Report, Candidate, Result, or plain dicts) into column
values, and stored rows back into `Result`s.

Duck-typed on purpose: the store takes an `Arch` or anything with the same attributes (or a dict),
so it never imports the grammar (nor torch); results come back as the evaluators' plain `Result`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from einsearch.evaluators.types import Result
from einsearch.storage.engine import StoreError

RESULT_COLUMNS = ("metric_name", "metric", "best_metric", "loss", "params", "flops_per_token", "wall_time_s",
                  "train_time_s", "tokens_per_s", "peak_mem_bytes", "host", "device", "error",
                  "node_id")
INT_COLUMNS = ("params", "flops_per_token", "peak_mem_bytes")


def field(obj: Any, name: str, default: Any = None) -> Any:
    """`obj[name]` for a mapping, `obj.name` otherwise (called if it is a method, like `Arch.ops`)."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    value = getattr(obj, name, default)
    return value() if callable(value) else value


def finite(value: Any) -> Any:
    """NaN and infinities become None (recursively): PostgreSQL's JSON rejects them, SQLite drops them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


@dataclass(frozen=True)
class ArchValues:
    text: str
    hash: str
    graph_hash: str | None
    ops: tuple[str, ...]
    params: int | None
    flops_per_token: int | None
    depth: int | None


def arch_values(arch: Any, report: Any = None) -> ArchValues:
    """Column values of an architecture: an `Arch`, a dict with the same keys ('text' for the string),
    or a canonical string (parsed with `einsearch.parse`). `report` (from `check`) adds params/FLOPs/depth."""
    if isinstance(arch, str):
        from einsearch.grammar import ArchError, parse

        try:
            arch = parse(arch)
        except ArchError as err:
            raise StoreError(f"not an architecture: {err}") from None
    text = arch.get("text") if isinstance(arch, dict) else str(arch)
    arch_hash = field(arch, "hash")
    if not text or not arch_hash:
        raise StoreError(f"an architecture needs its canonical string and hash, got {arch!r:.80}")
    source = report if report is not None else arch
    return ArchValues(text=text, hash=str(arch_hash), graph_hash=field(arch, "graph_hash"),
                      ops=tuple(sorted(set(field(arch, "ops", ()) or ()))),
                      params=_int(field(source, "params")), flops_per_token=_int(field(source, "flops_per_token")),
                      depth=_int(field(source, "depth")))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def task_spec(task: Any) -> str:
    """The canonical spec string of a Task or a spec string."""
    spec = task if isinstance(task, str) else getattr(task, "spec", None)
    if not spec:
        raise StoreError(f"an evaluation needs a task (a Task or its spec string), got {task!r:.80}")
    if isinstance(task, str):  # 'toy-causal' and 'toy-causal:seq=32,vocab=64' are the same task
        from einsearch.tasks import TaskError, get_task

        try:  # never a 'module:factory' import: the store does not run code named by its data
            return get_task(task, allow_factory=False).spec
        except TaskError:
            return spec  # a task this process cannot load (a plugin): kept as given
    return spec


def task_higher_is_better(task: Any) -> bool:
    """The task's metric direction; a spec string is looked up in the task registry."""
    value = getattr(task, "higher_is_better", None)
    if value is not None:
        return bool(value)
    from einsearch.tasks import TaskError, get_task

    try:
        return bool(get_task(task, allow_factory=False).higher_is_better)
    except TaskError:
        return True  # an unregistered task (e.g. from a plugin not loaded here): accuracy-like by default


def result_dict(result: Any) -> dict[str, Any]:
    """A Result (with to_dict) or a plain dict, as a dict."""
    if isinstance(result, dict):
        return dict(result)
    if hasattr(result, "to_dict"):
        return dict(result.to_dict())
    raise StoreError(f"a result must be a Result or a dict, got {type(result).__name__}")


def result_columns(result: Any) -> dict[str, Any]:
    """Column values of an evaluation's result. Everything the result reports (minus the curve) is also
    kept in `metrics`, so a Result rebuilt from the row is the one that was stored."""
    data = finite(result_dict(result))
    status = data.get("status", "ok")
    columns = {name: data.get(name) for name in RESULT_COLUMNS}
    for name in INT_COLUMNS:
        columns[name] = _int(columns[name])
    if status != "ok" and not columns["error"]:
        columns["error"] = f"status {status}"
    columns["status"] = "ok" if status == "ok" else "failed"
    columns["curve"] = data.get("curve") or []
    columns["metrics"] = {k: v for k, v in data.items() if k != "curve"}
    return columns


def to_result(record: Any) -> Result:
    """An evaluation record's result. The columns win over the `metrics` copy: rows from older schemas
    may lack the copy."""
    data = {**record.metrics, **{name: getattr(record, name) for name in RESULT_COLUMNS},
            "status": "ok" if record.status == "ok" else "failed", "curve": list(record.curve)}
    data["metric_name"] = data["metric_name"] or ""
    return Result.from_dict(data)
