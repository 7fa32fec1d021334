"""Sampler benchmark: valid architectures per second (sample + check), single process.

Writes the "Sampler" section of bench/RESULTS.md. Target on a 2-core CPU: >= 2,000 per second, and
no sample retried (the sampler is constrained, so a retry cannot happen; the count is measured as
the share of samples that fail `check`, which would need one).
"""
from __future__ import annotations

import argparse
import datetime
import platform
import random
import time

import torch

from einsearch import check
from einsearch.tasks import get_task
from einsearch.grammar.sampler import Limits, Sampler
from einsearch.grammar.tree import Arch, ArchError
from results_md import write_section



def measure(task_spec: str, n: int, max_params: int | None, seed: int = 0) -> dict:
    task = get_task(task_spec)
    sampler = Sampler(task, Limits(max_params=max_params))
    rng = random.Random(seed)
    for _ in range(200):  # warm the per-primitive parameter-count caches
        check(Arch(sampler.net(rng)), task)
    failed = 0
    start = time.perf_counter()
    for _ in range(n):
        arch = Arch(sampler.net(rng))
        try:
            check(arch, task)
        except ArchError:
            failed += 1
    seconds = time.perf_counter() - start
    return {"task": task_spec, "max_params": max_params, "n": n, "per_s": n / seconds, "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = [measure("toy-causal", args.n, None), measure("toy-causal", args.n, 1_000_000),
            measure("toy-classify", args.n, 1_000_000)]
    lines = [
        "## Sampler (bench/sampler.py)",
        f"{datetime.date.today()} on {platform.machine()} {platform.processor() or ''}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}, torch {torch.__version__}; "
        "single process, warm caches, sample + check.",
        "",
        "| task | max params | samples | valid archs / s | failed check (would need a retry) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['task']} | {r['max_params'] or '-'} | {r['n']} | {r['per_s']:,.0f} | "
                     f"{r['failed']} ({100 * r['failed'] / r['n']:.1f}%) |")
    text = "\n".join(lines)
    if not args.no_write:
        write_section(text)
    print(text)


if __name__ == "__main__":
    main()
