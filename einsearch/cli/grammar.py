"""Commands on architectures: ops, tasks, sample, check."""
from __future__ import annotations

import dataclasses

import typer
from rich.table import Table

from einsearch.cli.common import (JsonOpt, MaxParamsOpt, SeedOpt, TaskOpt, app, console, emit_json, fail,
                                  parse_count)


def op_record(spec) -> dict:
    return {"name": spec.name, "category": spec.category, "causal": spec.causal,
            "noncausal": spec.noncausal, "cost": spec.cost,
            "hparams": {k: list(v) for k, v in spec.hparams.items()},
            "defaults": spec.resolve({}), "compute_only": list(spec.compute_only), "doc": spec.doc}


@app.command()
def ops(json: bool = JsonOpt) -> None:
    """Every primitive with its category, causal support, cost in L and hyperparameter choices."""
    from einsearch.ops.catalogue import op_infos

    specs = op_infos()
    if json:
        for spec in specs:
            emit_json(op_record(spec))
        return
    table = Table(title=f"{len(specs)} primitives",
                  caption="* compute-only: changes speed, not the output; search keeps the default")
    for col in ("name", "category", "causal", "cost", "hyperparameters"):
        table.add_column(col)
    for spec in specs:
        hp = "  ".join(f"{k}{'*' if k in spec.compute_only else ''}={'|'.join(map(str, v))}"
                       for k, v in spec.hparams.items())
        table.add_row(spec.name, spec.category, "yes" if spec.causal else "no", spec.cost, hp)
    console.print(table)


@app.command()
def tasks(json: bool = JsonOpt) -> None:
    """Every registered task with its defaults, its training recipe (what applies without --steps) and its
    plateau (the score before a model learns the task's skill; `evolution:metric_floor=auto` reads it)."""
    from einsearch.memo import DiskMemo

    rows = [dict(row) for row in DiskMemo("tasks").get("rows", _describe_tasks)]  # a function of the code
    described = {row["name"]: row.pop("recipe_text") for row in rows}
    if json:
        for row in rows:
            emit_json(row)
        return
    table = Table(title="tasks")
    for col in ("name", "causal", "metric", "plateau", "default spec", "recipe"):
        table.add_column(col)
    for row in rows:
        plateau = "-" if row["plateau"] is None else f"{row['plateau']:.3g}"
        table.add_row(row["name"], "yes" if row["causal"] else "no", row["metric"], plateau,
                      row["spec"] or row["doc"], described[row["name"]])
    console.print(table)


def _describe_tasks() -> list[dict]:
    """One row per registered task: its defaults and recipe (imports every task module, and torch)."""
    from einsearch.tasks import list_tasks

    rows = []
    for cls in list_tasks():
        try:
            task = cls()
            rows.append({"name": cls.name, "spec": task.spec, "causal": cls.causal, "metric": cls.metric,
                         "higher_is_better": cls.higher_is_better, "recipe": dataclasses.asdict(task.recipe),
                         "plateau": task.plateau,
                         "doc": (cls.__doc__ or "").strip().split("\n")[0], "recipe_text": task.recipe.describe()})
        except Exception as err:  # a task that needs parameters (e.g. a data path) has no defaults
            rows.append({"name": cls.name, "spec": None, "causal": cls.causal, "metric": cls.metric,
                         "higher_is_better": cls.higher_is_better, "recipe": None, "plateau": None,
                         "doc": f"(needs parameters: {err})", "recipe_text": ""})
    return rows


@app.command("sample")
def sample_cmd(
    n: int = typer.Option(5, "-n", help="How many architectures."),
    seed: int = SeedOpt,
    task: str = TaskOpt,
    max_params: str = MaxParamsOpt,
    max_blocks: int = typer.Option(8, "--max-blocks", help="At most this many residual blocks."),
    json: bool = JsonOpt,
) -> None:
    """Sample architectures from the grammar (reproducible from --seed)."""
    from einsearch.grammar import check, sample
    from einsearch.grammar.tree import MAX_BLOCKS
    from einsearch.tasks import get_task

    if n < 0:
        fail(f"-n must be >= 0, got {n}")
    if not 1 <= max_blocks <= MAX_BLOCKS:
        fail(f"--max-blocks must be 1..{MAX_BLOCKS}, got {max_blocks}")
    task_obj = get_task(task)
    archs = sample(n, seed=seed, task=task_obj, max_params=parse_count(max_params, "--max-params"),
                   max_blocks=max_blocks)
    for arch in archs:
        report = check(arch, task_obj)
        if json:
            emit_json({"arch": str(arch), "hash": arch.hash, "params": report.params,
                       "flops_per_token": report.flops_per_token})
        else:
            console.print(f"[dim]{arch.hash}[/] {report.params:>10,d}  {arch}", highlight=False, soft_wrap=True)


@app.command("check")
def check_cmd(arch: str = typer.Argument(..., help="Architecture string."), task: str = TaskOpt,
              json: bool = JsonOpt) -> None:
    """Type-check an architecture for a task; print parameters, FLOPs, depth and its tree."""
    from einsearch.grammar import check, parse
    from einsearch.grammar.render import tree
    from einsearch.tasks import get_task

    task_obj = get_task(task)
    parsed = parse(arch)
    report = check(parsed, task_obj)
    if json:
        emit_json({"arch": str(parsed), "hash": parsed.hash, "graph_hash": parsed.graph_hash,
                   **dataclasses.asdict(report)})
        return
    console.print(tree(parsed))
    console.print(f"params {report.params:,d}   FLOPs/token {report.flops_per_token:,d}   depth {report.depth}"
                  f"   causal {report.causal}   state {report.state_size:,d}   hash {parsed.hash}", highlight=False)

