"""Zoology's MQAR separation (their Figure 2 at T=128, width 64, two token-mixing layers) on a CPU.

Attention solves multi-query associative recall; gated convolutions (BaseConv, Hyena) do not, at the
same width and training budget. Task `mqar-cpu` is Zoology's T=128, N=8 setting with a 256-token
vocabulary (V=8192 would make the embedding, not the mixers, the cost on a CPU). Each architecture
is trained for STEPS steps with several seeds, two trainings at a time (one thread each).

    .venv/bin/python bench/mqar_separation.py            # full run (~30-60 min on 2 cores), writes RESULTS.md
    .venv/bin/python bench/mqar_separation.py --tiny     # seconds; prints only
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
from concurrent.futures import ProcessPoolExecutor

from results_md import write_section

# (name, depth): both give two token-mixing layers (BaseConv's unit holds a short and a long conv).
MODELS = (("transformer", 2), ("baseconv", 1), ("hyena", 2))


def train(name: str, depth: int, task: str, width: int, steps: int, seed: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from einsearch.evaluators.trainer import evaluate
    from einsearch.evaluators.types import Candidate
    from einsearch.search.library import get_baseline

    arch = str(get_baseline(name, get_task(task), width=width, depth=depth))
    result = evaluate(Candidate(arch, task, steps, seed=seed), device="cpu", eval_every=max(1, steps // 10))
    return {"name": name, "seed": seed, "arch": arch, **result.to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="mqar-tiny, few steps, print only")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", default=",".join(name for name, _ in MODELS), help="subset of: %(default)s")
    args = parser.parse_args()
    models = [(name, depth) for name, depth in MODELS if name in args.models.split(",")]
    task, width, steps, seeds = ("mqar-tiny", 32, 30, 1) if args.tiny else ("mqar-cpu", 64, args.steps, args.seeds)
    jobs = [(name, depth, task, width, steps, seed) for name, depth in models for seed in range(seeds)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(train, *zip(*jobs)))
    rows = []
    for name, _ in models:
        mine = [r for r in runs if r["name"] == name]
        accs = [r["metric"] for r in mine if r["status"] == "ok"]
        failed = [r["error"] for r in mine if r["status"] != "ok"]
        rows.append(f"| {name} | {mine[0]['params']:,} | {statistics.mean(accs):.3f} | "
                    f"{min(accs):.3f}-{max(accs):.3f} | {' '.join(f'{a:.3f}' for a in accs)} | "
                    f"{statistics.mean(r['wall_time_s'] for r in mine):.0f} s |" + (f" failed: {failed}" if failed else ""))
    archs = "\n".join(f"- {name}: `{next(r['arch'] for r in runs if r['name'] == name)}`" for name, _ in models)
    from einsearch.tasks import get_task
    from einsearch.evaluators.trainer import TrainConfig

    cfg = TrainConfig.for_task(get_task(task), steps)
    section = (
        "## MQAR separation (bench/mqar_separation.py)\n\n"
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"2 trainings at a time, 1 torch thread each. Task `{task}`; width {width}; two token-mixing layers; "
        f"{steps} steps (AdamW, lr {cfg.lr:g}, batch {cfg.batch_size}, warm-up + cosine); accuracy on the query positions of "
        f"held-out batches; {seeds} seeds (training seed = data seed).\n\n"
        "| model | params | mean accuracy | range | per seed | wall per run |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n\n" + archs + "\n")
    print(section)
    if not args.tiny:
        write_section(section)


if __name__ == "__main__":
    main()
