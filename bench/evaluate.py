"""Benchmark the evaluators: platform overhead per candidate and throughput of 1 vs 2 Ray workers.

Overhead = a candidate's wall time, as the caller sees it (submit -> result), minus the time inside
its training steps (`train_time_s`); reported as a share of the candidate's wall time, for the local
and the Ray executor (Ray's start-up is excluded: it happens once per search). Throughput: the same
batch of candidates through Ray with 1 and 2 workers (1 CPU each), candidates per minute.

    .venv/bin/python bench/evaluate.py              # full size (a ~20 s candidate), writes bench/RESULTS.md
    .venv/bin/python bench/evaluate.py --tiny       # a quick smoke run, prints only
"""
from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import time

import torch

from einsearch.evaluators.executor_local import LocalExecutor
from einsearch.evaluators.types import Candidate
from einsearch.search.library import get_baseline
from einsearch.tasks import get_task
from results_md import RESULTS, write_section

log = logging.getLogger("bench.evaluate")
TASK = "lm-tiny"


def _candidates(steps: int, n: int, width: int) -> list[Candidate]:
    arch = str(get_baseline("transformer", get_task(TASK), width=width, depth=2))
    return [Candidate(arch, TASK, steps, seed=i) for i in range(n)]


def overhead(executor, candidates: list[Candidate]) -> dict[str, float]:
    """Mean wall time per candidate (submitted one at a time), the share outside the training steps, and
    the part of that share the platform adds: outside both the steps and the held-out scoring of the
    learning curve (measured work the candidate asked for, ~10 curve points)."""
    walls, trains, evals = [], [], []
    for candidate in candidates:
        tick = time.perf_counter()
        executor.submit(candidate)
        (_, result), = executor.wait()
        if not result.ok:
            raise RuntimeError(f"benchmark candidate failed: {result.error}")
        walls.append(time.perf_counter() - tick)
        trains.append(result.train_time_s)
        evals.append(result.eval_time_s)
    wall, train, scoring = (sum(v) / len(v) for v in (walls, trains, evals))
    return {"wall_s": wall, "train_s": train, "eval_s": scoring, "overhead_share": (wall - train) / wall,
            "platform_share": (wall - train - scoring) / wall}


def throughput(workers: int, candidates: list[Candidate]) -> float:
    """Candidates per minute through Ray with `workers` one-CPU workers (after one warm-up candidate)."""
    from einsearch.evaluators.executor_ray import RayExecutor

    with RayExecutor(workers=workers, num_cpus=1, device="cpu") as executor:
        for i in range(workers):  # warm every worker (torch import) before timing
            executor.submit(candidates[i])
        for _ in range(workers):
            executor.wait()
        tick = time.perf_counter()
        for candidate in candidates:
            executor.submit(candidate)
        done = 0
        while done < len(candidates):
            done += len(executor.wait())
        return 60 * len(candidates) / (time.perf_counter() - tick)


def run(tiny: bool) -> dict[str, object]:
    steps, n, width = (20, 2, 32) if tiny else (600, 3, 64)  # full: ~20 s per candidate on this machine
    candidates = _candidates(steps, n, width)
    torch.set_num_threads(1)
    local = overhead(LocalExecutor(device="cpu"), candidates)
    from einsearch.evaluators.executor_ray import RayExecutor

    with RayExecutor(workers=1, num_cpus=1, device="cpu") as ray_exec:
        ray_exec.submit(candidates[0])
        ray_exec.wait()  # warm the worker: its torch import is a once-per-worker cost
        ray = overhead(ray_exec, candidates)
    batch = _candidates(steps, 2 if tiny else 6, width)
    one, two = throughput(1, batch), throughput(2, batch)
    return {"steps": steps, "width": width, "local": local, "ray": ray, "one": one, "two": two,
            "speedup": two / one}


def section(r: dict) -> str:
    machine = f"{platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    rows = "\n".join(f"| {name} | {r[name]['wall_s']:.2f} | {r[name]['train_s']:.2f} | {r[name]['eval_s']:.2f} | "
                     f"{100 * r[name]['overhead_share']:.1f}% | {100 * r[name]['platform_share']:.1f}% |"
                     for name in ("local", "ray"))
    return (f"## Evaluate (bench/evaluate.py)\n\n{machine}; {datetime.date.today()}. Candidate: transformer "
            f"baseline, width {r['width']}, depth 2, {TASK}, {r['steps']} steps, CPU, 1 thread per worker.\n\n"
            "| executor | wall s / candidate | in training steps s | held-out scoring s | outside the steps | "
            f"platform overhead |\n|---|---|---|---|---|---|\n{rows}\n\n"
            "Outside the steps = wall - training steps; platform overhead also leaves out the held-out scoring "
            "of the learning curve (10 points x 4 batches, work the candidate asks for). Wall time is as the "
            "caller sees it (submit -> result), including build, data, pattern analysis and, for Ray, transport.\n\n"
            f"Ray throughput: 1 worker {r['one']:.1f} candidates/min, 2 workers {r['two']:.1f} candidates/min "
            f"({r['speedup']:.2f}x). Targets: overhead < 5% at a ~20 s candidate; 2 workers >= 1.7x.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="smoke size; print, do not write RESULTS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    text = section(run(args.tiny))
    if args.tiny:
        log.info("%s", text)
    else:
        write_section(text)
        log.info("wrote %s", RESULTS)


if __name__ == "__main__":
    main()
