"""The transformer baseline trained by a plain PyTorch loop and by the project's `evaluate`, side by side.

Same task generator (`task.batches`), same seed (model init and data), same held-out batches, same
thread count, in one run. Three ways per (task, seed):

- `plain-model`: a hand-written 2-layer pre-norm transformer (learned positions, LayerNorm, GELU MLP,
  4 heads), trained by the plain loop below: AdamW at the task's rate, constant, no clipping (the
  reference a researcher would write in ten minutes);
- `plain-loop`: the project's transformer baseline (`build`), trained by the same plain loop;
- `project`: the same baseline through `einsearch.evaluators.trainer.evaluate` at the task's recipe.

`plain-loop` vs `project` is the same model and data, so their seconds per training step compare the
trainers (target: project within 1.15x); steps to 0.99 compare the recipes.

    .venv/bin/python bench/trainer_reference.py                 # writes its section of RESULTS.md
    .venv/bin/python bench/trainer_reference.py --tiny          # seconds; prints only
    .venv/bin/python bench/trainer_reference.py --arch deltanet --ways plain-loop,project --steps 300
                                        # another baseline, or an architecture string a search found (--label)
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from results_md import write_section

TARGET = 0.99
WIDTH, DEPTH, HEADS = 64, 2, 4


class PlainBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.n1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.out(y)
        return x + self.mlp(self.n2(x))


class PlainTransformer(nn.Module):
    """Token + learned position embeddings, `depth` pre-norm blocks, LayerNorm, linear head."""

    def __init__(self, vocab: int, seq: int, dim: int = WIDTH, depth: int = DEPTH, heads: int = HEADS):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Embedding(seq, dim)
        self.blocks = nn.ModuleList(PlainBlock(dim, heads) for _ in range(depth))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


@torch.no_grad()
def accuracy(model: nn.Module, task: Any, batches: list) -> float:
    model.eval()
    right = total = 0
    for batch in batches:
        pred = model(batch.inputs).argmax(-1)
        mask = batch.targets != -100
        right, total = right + int((pred[mask] == batch.targets[mask]).sum()), total + int(mask.sum())
    model.train()
    return right / max(total, 1)


def plain_loop(model: nn.Module, task: Any, steps: int, seed: int, eval_every: int) -> dict:
    """AdamW at the task's rate, constant, no clipping; stops at the first curve point >= TARGET."""
    valid = task.batches("valid", task.batch_size, seed=0)
    held_out = [next(valid) for _ in range(task.eval_batches)]
    data = task.batches("train", task.batch_size, seed=seed)
    opt = torch.optim.AdamW(model.parameters(), lr=task.lr)
    curve, train_time, done = [], 0.0, 0
    for step in range(steps):
        batch = next(data)
        tick = time.perf_counter()
        loss = F.cross_entropy(model(batch.inputs).flatten(0, 1), batch.targets.flatten(), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss.detach())
        train_time += time.perf_counter() - tick
        done = step + 1
        if done % eval_every == 0 or done == steps:
            curve.append((done, accuracy(model, task, held_out)))
            if curve[-1][1] >= TARGET:
                break
    return {"curve": curve, "s_per_step": train_time / done, "steps_run": done}


def get_arch(text: str, task: Any) -> Any:
    """A baseline by name (at width 64, unit twice) or an architecture string."""
    from einsearch.grammar import parse
    from einsearch.search.library import get_baseline

    return parse(text) if text.lstrip().startswith("net(") else get_baseline(text, task, width=WIDTH, depth=DEPTH)


def run(way: str, spec: str, steps: int, seed: int, eval_every: int, arch_text: str = "transformer") -> dict:
    torch.set_num_threads(1)
    from einsearch.tasks import get_task
    from einsearch.evaluators.trainer import evaluate
    from einsearch.evaluators.types import Candidate
    from einsearch.grammar import build

    task = get_task(spec)
    arch = get_arch(arch_text, task)
    torch.manual_seed(seed)
    if way == "plain-model":
        out = plain_loop(PlainTransformer(task.vocab, task.seq_len), task, steps, seed, eval_every)
    elif way == "plain-loop":
        out = plain_loop(build(arch, task), task, steps, seed, eval_every)
    else:
        result = evaluate(Candidate(arch, spec, steps, seed=seed), device="cpu", eval_every=eval_every)
        if not result.ok:
            raise RuntimeError(f"{way} {spec} seed {seed}: {result.error}")
        out = {"curve": [tuple(p) for p in result.curve], "s_per_step": result.train_time_s / steps,
               "steps_run": steps}
    hit = next((s for s, m in out["curve"] if m >= TARGET), None)
    return {"way": way, "task": spec, "seed": seed, "steps": steps, "arch": str(arch), "to_target": hit,
            "final": out["curve"][-1][1], **out}


def _job_order(specs: list[str], steps: dict[str, int], seeds: int, ways: list[str], every: int,
               arch: str) -> list[tuple]:
    # Per (task, seed), the ways run back to back in one worker, so the speed comparison of a pair
    # sees the same machine load as far as possible.
    return [(way, spec, steps[spec], seed, every, arch) for spec in specs for seed in range(seeds) for way in ways]


def _chain(jobs: list[tuple]) -> list[dict]:
    return [run(*job) for job in jobs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="mqar-tiny, few steps, print only")
    parser.add_argument("--tasks", default="mqar:seq=64,pairs=4,vocab=128;mqar-cpu", help="';'-separated specs")
    parser.add_argument("--steps", default="", help="';'-separated steps per task (default: each task's recipe)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ways", default="plain-model,plain-loop,project")
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--arch", default="transformer", help="a baseline's name or an architecture string")
    parser.add_argument("--label", default=None, help="the architecture's name in the section heading")
    args = parser.parse_args()
    if args.arch != "transformer" and "plain-model" in args.ways:
        parser.error("plain-model is the hand-written transformer: give --ways plain-loop,project with --arch")
    from einsearch.tasks import get_task

    specs = ["mqar-tiny"] if args.tiny else args.tasks.split(";")
    given = [int(s) for s in args.steps.split(";") if s] if args.steps else []
    steps = {spec: (40 if args.tiny else given[i] if i < len(given) else get_task(spec).recipe.steps)
             for i, spec in enumerate(specs)}
    ways = args.ways.split(",")
    seeds = 1 if args.tiny else args.seeds
    jobs = _job_order(specs, steps, seeds, ways, 10 if args.tiny else args.eval_every, args.arch)
    groups = [jobs[i:i + len(ways)] for i in range(0, len(jobs), len(ways))]
    started = time.time()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        runs = [r for chunk in pool.map(_chain, groups) for r in chunk]
    wall = time.time() - started
    for spec in specs:
        section = report([r for r in runs if r["task"] == spec], spec, ways, seeds, args, wall)
        print(section)
        if not args.tiny:
            write_section(section)


def report(runs: list[dict], spec: str, ways: list[str], seeds: int, args: Any, wall: float) -> str:
    from einsearch.tasks import get_task

    date = subprocess.run(["date"], capture_output=True, text=True).stdout.strip()
    named = f", {args.label}" if args.label else "" if args.arch == "transformer" else f", {args.arch}"
    lines = [f"## Trainer reference, `{spec}`{named} (bench/trainer_reference.py)", "",
             f"{date}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
             f"(load average {os.getloadavg()[0]:.1f} at the end), "
             f"{args.workers} trainings at a time, 1 torch thread each; torch {torch.__version__}; "
             f"{wall / 60:.0f} min wall for the whole run. Accuracy on the query "
             f"positions of the task's held-out batches, every {args.eval_every} steps; steps to {TARGET} = the "
             "first curve point at or above it (the plain loops stop there). Seeds = model init and data seed.",
             "", f"Ways: `plain-model` = hand-written pre-norm transformer ({WIDTH} wide, {DEPTH} layers, {HEADS} "
             "heads) with learned positions, plain loop "
             "(AdamW at the task's rate, PyTorch's default betas and weight decay, constant, no clipping); "
             "`plain-loop` = the architecture below, built by the project (`build`), in that same loop; `project` = "
             "the same through `evaluate` at the task's recipe. s/step = training-step time only (no scoring).",
             ""]
    for _ in (spec,):
        r = get_task(spec).recipe
        lines += [f"Recipe: {r.steps} steps, batch {r.batch_size}, lr {r.lr:g}, schedule {r.schedule}, "
                  f"warm-up {r.warmup}, betas {r.betas}. Steps given: {next(x['steps'] for x in runs if x['task'] == spec)}.", "",
                  "| way | " + " | ".join(f"seed {s}" for s in range(seeds)) + " | s/step (median) |",
                  "|---|" + "---|" * seeds + "---|"]
        for way in ways:
            mine = sorted((x for x in runs if x["task"] == spec and x["way"] == way), key=lambda x: x["seed"])
            cells = [f"{x['to_target']}" if x["to_target"] else f"not by {x['steps_run']} ({x['final']:.3f})"
                     for x in mine]
            sps = statistics.median(x["s_per_step"] for x in mine)
            lines.append(f"| {way} | " + " | ".join(cells) + f" | {sps:.4f} |")
        pairs = [(p, q) for p in runs for q in runs if p["task"] == q["task"] == spec and p["seed"] == q["seed"]
                 and p["way"] == "project" and q["way"] == "plain-loop"]
        if pairs:
            ratios = [p["s_per_step"] / q["s_per_step"] for p, q in pairs]
            lines += ["", "Project s/step / plain-loop s/step, per seed: "
                      + ", ".join(f"{x:.2f}" for x in ratios) + f" (median {statistics.median(ratios):.2f})."]
        lines.append("")
        for x in sorted((x for x in runs if x["task"] == spec), key=lambda x: (x["way"], x["seed"])):
            pts = " ".join(f"{s}:{m:.2f}" for s, m in x["curve"][:: max(1, len(x["curve"]) // 12)])
            lines.append(f"- {x['way']} seed {x['seed']}: {pts}")
        lines.append("")
    lines.append(f"Architecture: `{runs[0]['arch']}`")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
