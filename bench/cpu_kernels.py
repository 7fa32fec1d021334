"""The CPU kernels against the PyTorch forms they replace: forward+backward of every primitive whose
forward runs one (found by running it), at D=128, B=8, L in {1024, 4096}, 2 threads, with the
kernels and with EINSEARCH_CPU_KERNELS=0. Same timing as bench/ops.py (fastest of 5 after a
warm-up; the trainer's allocator setting). Writes the "CPU kernels" section of bench/RESULTS.md.

    python bench/cpu_kernels.py
"""
from __future__ import annotations

import argparse
import logging
import os
from contextlib import contextmanager
from pathlib import Path

import torch

from einsearch.evaluators.allocator import keep_freed_memory
from einsearch.ops import list_ops
from einsearch.ops.kernels import loader as cpu_kernels
from op_timing import build, fwd_bwd, time_call, warm_up
from ops import machine_line
from results_md import RESULTS, write_section

log = logging.getLogger("bench.cpu_kernels")
HEADING = "## CPU kernels (bench/cpu_kernels.py)"


@contextmanager
def kernels(on: bool):
    previous = os.environ.get("EINSEARCH_CPU_KERNELS")
    os.environ["EINSEARCH_CPU_KERNELS"] = "1" if on else "0"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["EINSEARCH_CPU_KERNELS"]
        else:
            os.environ["EINSEARCH_CPU_KERNELS"] = previous


def kernels_used(spec, dim: int) -> list[str]:
    """The kernels a small forward of the primitive loads (the names passed to cpu_kernels.load)."""
    used, load = [], cpu_kernels.load

    def counting(name, dtype):
        lib = load(name, dtype)
        if lib is not None and name not in used:
            used.append(name)
        return lib

    cpu_kernels.load = counting
    try:
        with kernels(True):
            fwd_bwd(build(spec, dim, 16, "cpu"), torch.randn(2, 16, dim), "cpu")
    finally:
        cpu_kernels.load = load
    return used


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    cfg = parser.parse_args(argv)
    torch.set_num_threads(2)
    keep_freed_memory()
    dim, batch, lengths = 128, 8, (1024, 4096)
    warm_up("cpu")
    lines = [HEADING, "", machine_line("cpu") + ".", "",
             f"D={dim}, B={batch}, defaults, causal mode where available, fp32; fastest of 5 forward+backward "
             "ms after a warm-up, with the compiled kernels and with the PyTorch forms (EINSEARCH_CPU_KERNELS=0).",
             "", "| op | kernels it runs | L | kernels ms | PyTorch ms | speed-up |", "|---|---|---|---|---|---|"]
    for spec in list_ops():
        used = kernels_used(spec, dim)
        if not used:
            continue
        for length in lengths:
            module, x = build(spec, dim, length, "cpu"), torch.randn(batch, length, dim)
            times = []
            for on in (True, False):
                with kernels(on):
                    times.append(time_call(lambda: fwd_bwd(module, x, "cpu"), cfg.max_seconds))
            log.info("%s L=%d: kernels %.1f ms, PyTorch %.1f ms", spec.name, length, *(1000 * t for t in times))
            lines.append(f"| {spec.name} | {', '.join(used)} | {length} | {1000 * times[0]:,.1f} | "
                         f"{1000 * times[1]:,.1f} | {times[1] / times[0]:.1f}x |")
    write_section("\n".join(lines), cfg.out)
    log.info("wrote %s", cfg.out)


if __name__ == "__main__":
    main()
