"""GPU packing benchmark: candidates/hour with 1, 2 and 4 candidates sharing one GPU (Ray's fractional
`--gpus-per-candidate` 1, 0.5, 0.25). Needs a CUDA GPU; never part of the test suite.

Starts a local Ray with the machine's GPU, trains the same `--candidates` baselines on `--task` for
`--steps` steps at each packing (each into a fresh SQLite store, through `run_search`), and writes
the "GPU packing (bench/gpu_packing.py)" section of bench/RESULTS.md.

    python bench/gpu_packing.py                                  # exits with a message without a GPU
    python bench/gpu_packing.py --task mqar-cpu --steps 300 --candidates 12
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from einsearch.search.run import SearchConfig, run_search
from einsearch.storage import Store
from results_md import RESULTS, write_section

SECTION = "## GPU packing (bench/gpu_packing.py)"
PACKINGS = (1, 2, 4)  # candidates per GPU


def run(per_gpu: int, args: argparse.Namespace) -> tuple[float, int, int]:
    """(seconds, candidates ok, peak bytes of the largest candidate) at `per_gpu` candidates per GPU."""
    with tempfile.TemporaryDirectory() as tmp, Store.open(f"sqlite:///{tmp}/pack.db") as store:
        config = SearchConfig(name=f"pack{per_gpu}", task=args.task, strategy="evolution:population=16",
                              seed_with="all", budget=args.candidates, steps=args.steps, workers=per_gpu,
                              executor="ray", num_cpus=max(0.25, (os.cpu_count() or 1) / per_gpu / 2),
                              num_gpus=1 / per_gpu, keep_weights=0)
        start = time.perf_counter()
        run_search(config, store)
        elapsed = time.perf_counter() - start
        done = store.evaluations(config.name)
        return elapsed, sum(e.status == "ok" for e in done), max((e.peak_mem_bytes or 0) for e in done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mqar-cpu")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_packing: no CUDA GPU here (torch.cuda.is_available() is False); run it on a GPU machine")
    rows = []
    for per_gpu in PACKINGS:
        elapsed, ok, peak = run(per_gpu, args)
        rows.append((per_gpu, elapsed, ok, peak))
        print(f"{per_gpu} per GPU: {elapsed:.1f}s, {ok}/{args.candidates} ok, peak {peak / 2**20:.0f} MiB", flush=True)
    gpu = torch.cuda.get_device_name(0)
    lines = [SECTION, "",
             f"Machine: {gpu}, {os.cpu_count()} CPU cores, torch {torch.__version__}, Python "
             f"{platform.python_version()}; {datetime.date.today().isoformat()}. {args.candidates} candidates "
             f"(the baselines first) on `{args.task}`, {args.steps} steps each, local Ray.", "",
             "| candidates per GPU | --gpus-per-candidate | seconds | candidates/hour | ok | largest peak MiB |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {1 / n:g} | {s:.1f} | {3600 * args.candidates / s:.0f} | {ok} | {peak / 2**20:.0f} |"
              for n, s, ok, peak in rows]
    write_section("\n".join(lines), args.results)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
