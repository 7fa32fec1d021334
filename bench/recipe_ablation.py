"""What costs the transformer baseline steps on MQAR T=64: the trainer's knobs one at a time.

The baseline (width 64, 2 layers) through `evaluate` on `mqar:seq=64,pairs=4,vocab=128` for 400
steps, with TrainConfig overrides (schedule, warm-up, betas, weight decay), two trainings at a time,
one thread each; reports the first curve point (every 25 steps) at or above 0.99.

    .venv/bin/python bench/recipe_ablation.py --seeds 0,1,2        # writes its section of RESULTS.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from results_md import write_section

SPEC = "mqar:seq=64,pairs=4,vocab=128"
OLD = {"schedule": "cosine", "warmup": None, "betas": (0.9, 0.95), "weight_decay": 0.1}  # before issue 17
CONFIGS: dict[str, dict[str, Any]] = {
    "old default: warm-up min(100, steps/10) + cosine, betas 0.9/0.95": OLD,
    "constant, no warm-up, betas 0.9/0.95": {**OLD, "schedule": "constant", "warmup": 0},
    "constant, no warm-up, betas 0.9/0.999 (new MQAR T<=64 recipe)": {**OLD, "schedule": "constant", "warmup": 0,
                                                                      "betas": (0.9, 0.999)},
    "same, weight decay 0": {**OLD, "schedule": "constant", "warmup": 0, "betas": (0.9, 0.999), "weight_decay": 0.0},
}


def one(name: str, over: dict[str, Any], steps: int, seed: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from einsearch.evaluators.trainer import evaluate
    from einsearch.evaluators.types import Candidate
    from einsearch.search.library import get_baseline

    arch = str(get_baseline("transformer", SPEC, width=64, depth=2))
    r = evaluate(Candidate(arch, SPEC, steps, seed=seed), device="cpu", eval_every=25, **over)
    hit = next((s for s, m in r.curve if m >= 0.99), None)
    return {"name": name, "seed": seed, "hit": hit, "final": r.metric, "s_per_step": (r.train_time_s or 0) / steps,
            "curve": " ".join(f"{s}:{m:.2f}" for s, m in r.curve[1::2])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [(name, over, args.steps, seed) for name, over in CONFIGS.items() for seed in seeds]
    with ProcessPoolExecutor(2) as pool:
        runs = list(pool.map(one, *zip(*jobs)))
    for run in runs:
        print(json.dumps(run))
    date = subprocess.run(["date"], capture_output=True, text=True).stdout.strip()
    lines = ["## Recipe ablation (bench/recipe_ablation.py)", "",
             f"{date}; {platform.machine()}, {os.cpu_count()} cores (shared with other jobs), 2 trainings at a time, "
             f"1 thread each. Transformer baseline (width 64, 2 layers) through `evaluate` on `{SPEC}`, "
             f"{args.steps} steps, batch 64, lr 3e-3, clipping 1.0; steps to 0.99 (curve every 25 steps).", "",
             "| trainer setting | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
    for name in CONFIGS:
        mine = sorted((r for r in runs if r["name"] == name), key=lambda r: r["seed"])
        lines.append(f"| {name} | " + " | ".join(str(r["hit"]) if r["hit"] else f"not by {args.steps} "
                                                 f"({r['final']:.3f})" for r in mine) + " |")
    write_section("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
