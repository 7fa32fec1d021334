"""Does a task separate architectures at its recipe? Every baseline's score, per task, at the task's recipe.

Each baseline (width 64, its unit stacked twice, as `einsearch baselines` sizes it) is trained on each
task through `evaluate` with the task's recipe (steps, batch, lr, schedule: `einsearch tasks`), two
trainings at a time, one thread each. The known ordering on recall tasks: attention and the delta
rule >= 0.9, gated convolutions visibly lower.

    .venv/bin/python bench/task_separation.py                                # MQAR T=64, every baseline
    .venv/bin/python bench/task_separation.py --tasks "mqar-cpu" --baselines transformer,deltanet,baseconv
    .venv/bin/python bench/task_separation.py --tasks mad:size=cpu --baselines transformer,deltanet,mamba,hyena,baseconv
                                   # an aggregate: its members, one table of baseline x task (MAD's mean last)
    .venv/bin/python bench/task_separation.py --tiny                         # seconds; prints only
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor

from results_md import write_section


def at_a_time(workers: int) -> str:
    return f"{workers} training{'s' * (workers > 1)} at a time"


def train(name: str, spec: str, steps: int | None, seed: int, width: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from einsearch.tasks import get_task
    from einsearch.evaluators.trainer import evaluate
    from einsearch.evaluators.types import Candidate
    from einsearch.search.library import get_baseline
    from einsearch.grammar import check

    task = get_task(spec)
    arch = get_baseline(name, task, width=width)
    steps = steps or task.recipe.steps
    result = evaluate(Candidate(arch, spec, steps, seed=seed), device="cpu", eval_every=max(1, steps // 12))
    state = check(arch, task).state_size
    return {"name": name, "task": spec, "seed": seed, "steps": steps, "arch": str(arch), "state": state,
            **result.to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="mqar-tiny, 30 steps, three baselines, print only")
    parser.add_argument("--tasks", default="mqar:seq=64,pairs=4,vocab=128", help="';'-separated specs")
    parser.add_argument("--baselines", default="all", help="comma-separated names, or all")
    parser.add_argument("--steps", type=int, default=None, help="override every task's recipe steps")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from einsearch.search.library import baselines
    from einsearch.tasks import get_task

    specs = ["mqar-tiny"] if args.tiny else args.tasks.split(";")
    aggregate = len(specs) == 1 and hasattr(get_task(specs[0]), "members")
    suite = specs[0]
    if aggregate:
        specs = [member.spec for _, member in get_task(suite).members()]
    steps = 30 if args.tiny else args.steps
    wanted = "transformer,deltanet,baseconv" if args.tiny else args.baselines
    jobs = []
    for spec in specs:
        names = [n for n, _ in baselines(get_task(spec), width=args.width)]
        names = names if wanted == "all" else [n for n in wanted.split(",") if n in names]
        jobs += [(n, spec, steps, seed, args.width) for n in names for seed in range(args.seeds)]
    started = time.time()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        runs = list(pool.map(train, *zip(*jobs)))
    if aggregate:
        section = matrix(runs, suite, specs, args, time.time() - started)
        print(section)
        write_section(section)
        return
    for spec in specs:
        section = report([r for r in runs if r["task"] == spec], spec, args, time.time() - started, steps)
        print(section)
        if not args.tiny:
            write_section(section)


def report(runs: list[dict], spec: str, args: argparse.Namespace, wall: float, steps: int | None) -> str:
    from einsearch.tasks import get_task

    date = subprocess.run(["date"], capture_output=True, text=True).stdout.strip()
    recipe = get_task(spec).recipe
    lines = [f"## Task separation, `{spec}` (bench/task_separation.py)", "",
             f"{date}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
             f"(load average {os.getloadavg()[0]:.1f} at the end), {at_a_time(args.workers)}, 1 torch thread each; "
             f"{wall / 60:.0f} min wall for the run. "
             f"Recipe: {recipe.describe()}" + (f" (steps overridden: {steps})" if steps else "")
             + f". Width {args.width}, unit stacked twice; metric on held-out batches; seeds 0..{args.seeds - 1}.",
             "", "| baseline | params | decoding state | final per seed | best on curve | s/step | curve (seed 0) |",
             "|---|---|---|---|---|---|---|"]
    names = list(dict.fromkeys(r["name"] for r in runs))
    key = lambda name: -max((r["metric"] or 0.0) for r in runs if r["name"] == name)
    for name in sorted(names, key=key):
        mine = sorted((r for r in runs if r["name"] == name), key=lambda r: r["seed"])
        finals = " ".join(f"{r['metric']:.3f}" if r["status"] == "ok" else f"failed ({r['error']})" for r in mine)
        best = " ".join(f"{r['best_metric']:.3f}" for r in mine if r["status"] == "ok")
        sps = " ".join(f"{r['train_time_s'] / r['steps']:.3f}" for r in mine if r.get("train_time_s"))
        curve = " ".join(f"{s}:{m:.2f}" for s, m in mine[0]["curve"][1::2])
        lines.append(f"| {name} | {mine[0]['params']:,} | {mine[0]['state']:,} | {finals} | {best} | {sps} | {curve} |")
    lines += [""] + [f"- {name}: `{next(r['arch'] for r in runs if r['name'] == name)}`" for name in names]
    return "\n".join(lines) + "\n"


def matrix(runs: list[dict], suite: str, specs: list[str], args: argparse.Namespace, wall: float) -> str:
    """One table for an aggregate's members: each baseline's final score per task, and their mean."""
    from einsearch.tasks import get_task

    date = subprocess.run(["date"], capture_output=True, text=True).stdout.strip()
    names = list(dict.fromkeys(r["name"] for r in runs))
    short = [spec.split(":")[0] for spec in specs]
    per_seed: dict[tuple[str, str], list[float | None]] = {}
    for r in runs:
        per_seed.setdefault((r["name"], r["task"]), []).append(r["metric"] if r["status"] == "ok" else None)
    # A failed seed counts 0, as a failed task does in the mean.
    score = {key: sum(v or 0.0 for v in values) / len(values) for key, values in per_seed.items()}
    mean = {n: sum(score.get((n, s), 0.0) for s in specs) / len(specs) for n in names}

    def cell(name: str, spec: str) -> str:
        values = per_seed.get((name, spec), [])
        ok = [v for v in values if v is not None]
        if not ok:
            return "failed" if values else "missing"
        text = f"{score[(name, spec)]:.3f}" + (f" ({min(ok):.3f}-{max(ok):.3f})" if len(values) > 1 else "")
        return text + (f", {len(values) - len(ok)} failed" if len(ok) < len(values) else "")

    seeds = "seed 0" if args.seeds == 1 else f"mean of seeds 0..{args.seeds - 1} (lowest-highest)"
    lines = [f"## Task separation, `{suite}` (bench/task_separation.py)", "",
             f"{date}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores (load average "
             f"{os.getloadavg()[0]:.1f} at the end), {at_a_time(args.workers)}, 1 torch thread each; "
             f"{wall / 60:.0f} min wall. Each member at its recipe "
             f"({get_task(specs[0]).recipe.describe()}); width {args.width}, unit stacked twice; accuracy on "
             f"held-out batches (scored positions only), {seeds}. Failed or missing runs count 0 in the mean.", "",
             "| baseline | params (first task) | " + " | ".join(short) + " | mean |",
             "|---|---|" + "---|" * (len(specs) + 1)]
    for name in sorted(names, key=lambda n: -mean[n]):
        cells = [cell(name, spec) for spec in specs]
        params = next(r["params"] for r in runs if r["name"] == name)
        lines.append(f"| {name} | {params or 0:,} | " + " | ".join(cells) + f" | {mean[name]:.3f} |")
    lines += ["", "Tasks: " + "; ".join(f"`{spec}`" for spec in specs), ""]
    lines += [f"- {name}: `{next(r['arch'] for r in runs if r['name'] == name)}`" for name in names]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
