"""`einsearch show ID`: one evaluation or architecture from the database (or an architecture string)."""
from __future__ import annotations

from typing import Any, Optional

import typer
from rich.table import Table

from einsearch.cli.common import DbOpt, JsonOpt, app, console, emit_json, fail, opened_store, short
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from einsearch.storage import ArchRecord, EvaluationRecord, Store

SPARKS = "▁▂▃▄▅▆▇█"
CURVE_ROWS = 12


def curve_points(curve: list[Any]) -> list[tuple[Any, float]]:
    """(step, value) pairs from a stored curve: numbers, [step, value] pairs, or dicts with a value."""
    points = []
    for i, point in enumerate(curve):
        if isinstance(point, (int, float)):
            step, value = i + 1, point
        elif isinstance(point, (list, tuple)) and len(point) >= 2:
            step, value = point[0], point[-1]
        elif isinstance(point, dict):
            step = point.get("step", i + 1)
            value = next((point[k] for k in ("metric", "value", "loss") if point.get(k) is not None), None)
        else:
            continue
        if isinstance(value, (int, float)):
            points.append((step, float(value)))
    return points


def sparkline(values: list[float]) -> str:
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(SPARKS[min(len(SPARKS) - 1, int((v - low) / span * len(SPARKS)))] for v in values)


def _print_arch(text: str) -> None:
    """The derivation tree; the plain string if this einsearch no longer parses it."""
    from einsearch.grammar import ArchError, parse
    from einsearch.grammar.render import tree

    try:
        console.print(tree(parse(text)))
    except ArchError:
        console.print(text, highlight=False)


def _print_curve(curve: list[Any]) -> None:
    points = curve_points(curve)
    if not points:
        console.print("learning curve: none recorded")
        return
    console.print(f"learning curve: {sparkline([v for _, v in points])}  "
                  f"({short(points[0][1])} -> {short(points[-1][1])}, {len(points)} points)")
    table = Table("step", "value", title=None, box=None)
    stride = -(-len(points) // CURVE_ROWS)  # ceil: at most CURVE_ROWS rows, plus the last point
    for step, value in points[::stride] + ([points[-1]] if (len(points) - 1) % stride else []):
        table.add_row(str(step), f"{value:.5g}")
    console.print(table)


def _print_evaluation(e: EvaluationRecord) -> None:
    console.print(f"[bold]evaluation {e.id}[/]  status {e.status}  search {e.search or '-'}  task {e.task}  "
                  f"steps {e.steps}  seed {e.seed}" + (f"  lr {e.lr:g}" if e.lr is not None else ""), highlight=False)
    table = Table("field", "value", box=None)
    fields = {"metric_name": e.metric_name, "metric": e.metric, "best_metric": e.best_metric, "loss": e.loss,
              "params": e.params, "flops_per_token": e.flops_per_token, "wall_time_s": e.wall_time_s,
              "train_time_s": e.train_time_s, "tokens_per_s": e.tokens_per_s, "peak_mem_bytes": e.peak_mem_bytes,
              "host": e.host, "node": e.node_id, "device": e.device, "weights": e.weights_path, "cached_from": e.cached_from,
              "error": e.error}
    extra = {k: v for k, v in e.metrics.items()
             if k not in fields and k not in ("status", "extra_metrics", "patterns")}
    extra.update(e.metrics.get("extra_metrics") or {})  # task-specific figures, e.g. ridge_mse
    for name, value in {**fields, **extra}.items():
        if value is not None:
            table.add_row(name, f"{value:.6g}" if isinstance(value, float) else str(value))
    console.print(table)
    _print_curve(e.curve)


def _print_patterns(e: EvaluationRecord) -> None:
    """The attention-pattern analysis stored with the evaluation (one row per attention layer)."""
    found = e.metrics.get("patterns")
    if not found:
        console.print(f"attention patterns (evaluation {e.id}): none recorded (no attention layer with an "
                      "explicit matrix, or not analysed)", highlight=False)
        return
    table = Table("layer", "op", "pattern", "local mass", "global mass", "heads",
                  title=f"attention patterns (evaluation {e.id})", box=None)
    for p in found:
        table.add_row(str(p.get("layer", "-")), str(p.get("op", "-")), str(p.get("pattern", "-")),
                      short(p.get("local")), short(p.get("global")), " ".join(p.get("heads") or []))
    console.print(table)


def _print_lineage(store: Store, arch_hash: str) -> None:
    parents, children = store.lineage(arch_hash)
    if not parents and not children:
        console.print("lineage: none recorded")
    for edge in parents:
        console.print(f"parent  {edge.parent_hash}  by {edge.op}  (search {edge.search or '-'})", highlight=False)
    for edge in children:
        console.print(f"child   {edge.child_hash}  by {edge.op}  (search {edge.search or '-'})", highlight=False)


def _show_found(store: Store, found: EvaluationRecord | ArchRecord, as_json: bool, patterns: bool = False) -> None:
    from einsearch.storage import ArchRecord, EvaluationRecord

    arch_hash = found.arch_hash if isinstance(found, EvaluationRecord) else found.hash
    evals = [found] if isinstance(found, EvaluationRecord) else store.evaluations(arch_hash=arch_hash)
    parents, children = store.lineage(arch_hash)
    if as_json:
        arch = store.get_architecture(arch_hash)
        emit_json({"arch": arch.text, "hash": arch.hash, "graph_hash": arch.graph_hash, "ops": list(arch.ops),
                   "evaluations": [e.to_dict() for e in evals],
                   "parents": [vars(p) for p in parents], "children": [vars(c) for c in children]})
        return
    arch = store.get_architecture(arch_hash)
    console.print(f"[bold]architecture {arch.hash}[/]  graph {arch.graph_hash or '-'}  "
                  f"uses {', '.join(arch.ops) or '-'}", highlight=False)
    _print_arch(arch.text)
    if isinstance(found, ArchRecord):
        table = Table("eval", "search", "task", "steps", "seed", "status", "metric", "params", title="evaluations")
        for e in evals:
            table.add_row(str(e.id), e.search or "-", e.task, str(e.steps), str(e.seed), e.status, short(e.metric),
                          short(e.params))
        console.print(table)
        done = [e for e in evals if e.status == "ok" and e.metric is not None]
        if done:  # the best one in full
            found = max(done, key=lambda e: e.metric if e.higher_is_better else -e.metric)
    if isinstance(found, EvaluationRecord):
        _print_evaluation(found)
        if patterns:
            _print_patterns(found)
    elif patterns:
        console.print("attention patterns: no finished evaluation")
    _print_lineage(store, arch_hash)


@app.command()
def show(
    ref: str = typer.Argument(..., metavar="ID", help="Evaluation id (e.g. 12 or e12), architecture hash or "
                              "unique prefix, or an architecture string."),
    json: bool = JsonOpt,
    patterns: bool = typer.Option(False, "--patterns", help="Also the attention pattern (local, hybrid, global) "
                                  "of each attention layer, as analysed after training."),
    db: Optional[str] = DbOpt,
) -> None:
    """An evaluation or architecture: its tree, every metric, its learning curve and its lineage."""
    from einsearch.storage import StoreError

    problem = None
    try:
        with opened_store(db) as store:
            try:
                found = store.resolve(ref)
            except StoreError as err:
                problem = str(err)
            else:
                _show_found(store, found, json, patterns)
                return
    except StoreError as err:  # no database here: `ref` may still be an architecture string
        if "no database at" not in str(err):
            raise
        problem = str(err)
    _show_parsed(ref, problem, json)


def _show_parsed(ref: str, problem: str, as_json: bool) -> None:
    """`ref` is not in the database: show it if it is an architecture string, else report `problem`."""
    from einsearch.grammar import ArchError, parse
    from einsearch.grammar.render import tree

    try:
        arch = parse(ref)
    except ArchError:
        fail(problem)
    if as_json:
        emit_json({"arch": str(arch), "hash": arch.hash, "graph_hash": arch.graph_hash, "ops": list(arch.ops()),
                   "evaluations": []})
        return
    console.print(f"[bold]architecture {arch.hash}[/] (not in the database)", highlight=False)
    console.print(tree(arch))
