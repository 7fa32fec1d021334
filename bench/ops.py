"""Mixer benchmark: forward+backward time and peak memory of every registered primitive.

Writes the "Ops" section of bench/RESULTS.md (replacing only that section):
- every token and channel mixer at D=128, B=8, L in {256, 1024, 4096}, defaults, causal mode where
  the primitive has one; fastest wall time of forward+backward (see time_call); peak memory; the growth exponent in
  L (least-squares slope of log time against log L);
- recurrent/SSM families: the chunked forward+backward against the step-by-step reference (the
  module's own `step` in a Python loop over L, inputs unbound along time, then the same loss and
  backward) at L=1024;
- recurrent (chunked linear-attention) families against the registered softmax `attention`
  (PyTorch's scaled_dot_product_attention, same defaults) at L=512, forward+backward.

Peak memory. CUDA: torch.cuda.max_memory_allocated above the allocation before the run. CPU: peak
resident set size (RSS, /proc/self/statm sampled every ~1 ms by a thread) above the RSS before the
run, measured in a separate spawned process whose glibc MALLOC_MMAP_THRESHOLD_ is fixed at 64 KiB
so that freed tensors go back to the OS and RSS follows the live tensors. It includes kernel
scratch buffers and can miss peaks shorter than the sampling interval. Timings run in this process,
with the allocator setting the trainer uses (evaluators.allocator.keep_freed_memory: glibc keeps
freed memory for reuse): under the probe's threshold every large allocation page-faults afresh,
which made allocation-heavy mixers look 2-3x slower than they are, and glibc's defaults do the same
above 32 MiB (at L=4096).

On a CPU, Mamba-1's selective scan and the depthwise convolutions run compiled C kernels
(einsearch/ops/kernels/loader.py); EINSEARCH_CPU_KERNELS=0 times the PyTorch forms instead.

    python bench/ops.py                      # full run (minutes)
    python bench/ops.py --quick --ops mlp --out /tmp/x.md
    python bench/ops.py --devices cuda --out /tmp/cuda.md   # on a GPU machine (the section in --out is replaced)
"""
from __future__ import annotations

import argparse
import datetime
import logging
import math
import os
import platform
import re
import sys
from pathlib import Path

import torch

from einsearch.evaluators.allocator import keep_freed_memory
from einsearch.ops import get_op, list_ops
from einsearch.ops.kernels import loader as cpu_kernels
from einsearch.ops.registry import OpSpec
from op_timing import MemoryProbe, Timeout, build, fwd_bwd, peak_memory, sync, time_call, warm_up
from results_md import RESULTS, write_section

log = logging.getLogger("bench.ops")
HEADING = "## Ops (bench/ops.py)"
STEP_FAMILIES = ("recurrent", "ssm")  # also the "L-linear families" of the targets below
LINEAR_ATTENTION_FAMILY = "recurrent"
SDPA_OP = "attention"


def measure_op(spec: OpSpec, dim: int, batch: int, lengths: list[int], device: str,
               max_seconds: float, probe: MemoryProbe | None = None) -> dict:
    """{L: (seconds or None for timeout/error, peak bytes, note)}; longer L skipped after a timeout."""
    row, stop = {}, None
    for length in lengths:
        if stop:
            row[length] = (None, None, stop)
            continue
        try:
            module = build(spec, dim, length, device)
            x = torch.randn(batch, length, dim, device=device)
            seconds = time_call(lambda: fwd_bwd(module, x, device), max_seconds)
            if device == "cuda" or probe is None:
                peak = peak_memory(lambda: fwd_bwd(module, x, device), device)
            else:
                peak = probe.peak(spec, dim, batch, length)
            row[length] = (seconds, peak, "")
        except Timeout:
            stop = "timeout"
            row[length] = (None, None, stop)
        except (RuntimeError, ValueError, MemoryError) as err:  # report, keep benchmarking the others
            log.warning("%s at L=%d failed: %s", spec.name, length, err)
            stop = "error"
            row[length] = (None, None, stop)
        log.info("%s L=%d: %s", spec.name, length, row[length])
    return row


def growth_exponent(row: dict) -> float | None:
    """Least-squares slope of log(time) against log(L) over the measured lengths."""
    points = [(math.log(length), math.log(t)) for length, (t, _, _) in row.items() if t]
    if len(points) < 2:
        return None
    mx = sum(p[0] for p in points) / len(points)
    my = sum(p[1] for p in points) / len(points)
    return sum((a - mx) * (b - my) for a, b in points) / sum((a - mx) ** 2 for a, _ in points)


def step_loop(module: torch.nn.Module, x: torch.Tensor, device: str) -> None:
    """The recurrent reference, trained the same way as the chunked form: module.step over
    positions (inputs unbound along time first), then the same loss and backward."""
    module.zero_grad(set_to_none=True)
    xi = x.detach().requires_grad_()
    state = module.init_state(x.shape[0], device=x.device, dtype=x.dtype)
    outputs = []
    for x_t in xi.unbind(1):
        y_t, state = module.step(x_t, state)
        outputs.append(y_t)
    torch.stack(outputs, 1).pow(2).mean().backward()
    sync(device)


def compare_step(spec: OpSpec, dim: int, batch: int, length: int, device: str, max_seconds: float) -> tuple:
    """(chunked fwd+bwd seconds, step loop seconds) or None entries on timeout."""
    module = build(spec, dim, length, device)
    x = torch.randn(batch, length, dim, device=device)
    out = []
    for fn in (lambda: fwd_bwd(module, x, device), lambda: step_loop(module, x, device)):
        try:
            out.append(time_call(fn, max_seconds))
        except Timeout:
            out.append(None)
    return tuple(out)


def fmt_ms(seconds: float | None, note: str = "") -> str:
    return f"{1000 * seconds:,.1f}" if seconds else (note or "-")


def fmt_mib(nbytes: int | None) -> str:
    return "-" if nbytes is None or nbytes < 0 else f"{nbytes / 2**20:,.1f}"


def machine_line(device: str) -> str:
    where = torch.cuda.get_device_name() if device == "cuda" else f"{platform.processor() or platform.machine()}"
    return (f"{datetime.date.today()}; {platform.platform()}; {os.cpu_count()} CPUs; {where}; "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; device {device}")


def report(device: str, cfg: argparse.Namespace, specs: list[OpSpec], rows: dict, steps: dict,
           vs_sdpa: dict) -> list[str]:
    lines = [f"### {device}", "", machine_line(device) + ".", "",
             f"D={cfg.dim}, B={cfg.batch}, defaults, causal mode where available, fp32; fastest of 5 "
             f"forward+backward ms (after a warm-up); peak memory MiB ({'CUDA allocated' if device == 'cuda' else 'RSS growth'}); "
             f"cap {cfg.max_seconds:g} s per measurement.", ""]
    if device == "cpu":
        kernels = "compiled CPU kernels" if cpu_kernels.enabled() else "PyTorch forms (EINSEARCH_CPU_KERNELS=0)"
        lines[-1:-1] = ["", f"Mamba-1's scan and the depthwise convolutions: {kernels}; glibc malloc keeps freed "
                            "memory (the trainer's setting, einsearch.evaluators.allocator)."]
    head = "| op | category | cost | " + " | ".join(f"L={n} ms | L={n} MiB" for n in cfg.lengths) + " | exponent |"
    lines += [head, "|" + "---|" * (4 + 2 * len(cfg.lengths))]
    for spec in specs:
        row = rows[spec.name]
        cells = " | ".join(f"{fmt_ms(t, note)} | {fmt_mib(m)}" for t, m, note in row.values())
        exponent = growth_exponent(row)
        lines.append(f"| {spec.name} | {spec.category} | {spec.cost} | {cells} | "
                     f"{'-' if exponent is None else f'{exponent:.2f}'} |")
    if steps:
        lines += ["", f"Chunked vs step-by-step reference (the module's `step` in a loop over positions), "
                  f"both forward+backward, at L={cfg.step_len}:", "", "| op | chunked ms | step loop ms | speed-up |",
                  "|---|---|---|---|"]
        for name, (fast, slow) in steps.items():
            ratio = f"{slow / fast:.1f}x" if fast and slow else ("> cap" if fast else "-")
            lines.append(f"| {name} | {fmt_ms(fast, 'timeout')} | {fmt_ms(slow, 'timeout')} | {ratio} |")
    if vs_sdpa:
        vs_sdpa = dict(vs_sdpa)
        base = vs_sdpa.pop(SDPA_OP, None)
        lines += ["", f"Recurrent (chunked) families vs `{SDPA_OP}` (SDPA) at L={cfg.sdpa_len}, "
                  f"forward+backward (SDPA: {fmt_ms(base, 'n/a')} ms):", "",
                  "| op | ms | time / SDPA |", "|---|---|---|"]
        for name, seconds in vs_sdpa.items():
            ratio = f"{seconds / base:.2f}" if seconds and base else "-"
            lines.append(f"| {name} | {fmt_ms(seconds, 'timeout')} | {ratio} |")
    return lines


def targets(device: str, cfg: argparse.Namespace, specs: list[OpSpec], rows: dict, steps: dict,
            vs_sdpa: dict) -> list[str]:
    """Issue #3's targets, checked on this run: one line per target with the ops that miss it."""
    families = [s for s in specs if s.category in STEP_FAMILIES and s.cost in ("L", "L log L")]
    longest = cfg.lengths[-1]
    attention = rows.get(SDPA_OP, {}).get(longest, (None,))[0]
    checks = [  # (target, {op: value}, passes)
        ("growth exponent under 1.2", {s.name: growth_exponent(rows[s.name]) for s in families},
         lambda v: v < 1.2),
        (f"time / `{SDPA_OP}` at L={longest} under 1", {
            s.name: rows[s.name][longest][0] / attention if attention and rows[s.name][longest][0] else None
            for s in families}, lambda v: v < 1),
        (f"step loop / chunked at L={cfg.step_len} at least 10", {
            name: slow / fast if fast and slow else None for name, (fast, slow) in steps.items()},
         lambda v: v >= 10),
        (f"time / SDPA at L={cfg.sdpa_len} at most 3", {
            name: t / vs_sdpa[SDPA_OP] if t and vs_sdpa.get(SDPA_OP) else None
            for name, t in vs_sdpa.items() if name != SDPA_OP}, lambda v: v <= 3),
    ]
    scope = "" if device == "cpu" else " (the issue sets them for the CPU; on this device for information)"
    lines = ["", f"Targets (issue #3){scope} on this run; L-linear families = categories "
             f"{', '.join(STEP_FAMILIES)} with cost L or L log L:", ""]
    for target, values, passes in checks:
        if not values:
            continue
        missed = [f"{name} ({'-' if v is None else f'{v:.2f}'})" for name, v in values.items()
                  if v is None or not passes(v)]
        verdict = "missed by " + ", ".join(missed) if missed else f"all {len(values)} pass"
        lines.append(f"- {target}: {verdict}")
    return lines


def run_device(device: str, cfg: argparse.Namespace, specs: list[OpSpec]) -> list[str]:
    warm_up(device)
    probe = MemoryProbe(cfg.threads) if device == "cpu" and sys.platform.startswith("linux") else None
    try:
        rows = {s.name: measure_op(s, cfg.dim, cfg.batch, cfg.lengths, device, cfg.max_seconds, probe)
                for s in specs}
    finally:
        if probe is not None:
            probe.close()
    steps = {}
    for spec in specs:
        if spec.category in STEP_FAMILIES and spec.causal and hasattr(spec.cls, "step"):
            steps[spec.name] = compare_step(spec, cfg.dim, cfg.batch, cfg.step_len, device, cfg.max_seconds)
    vs_sdpa = {}
    if any(s.category == LINEAR_ATTENTION_FAMILY for s in specs):
        for spec in [get_op(SDPA_OP)] + [s for s in specs if s.category == LINEAR_ATTENTION_FAMILY]:
            row = measure_op(spec, cfg.dim, cfg.batch, [cfg.sdpa_len], device, cfg.max_seconds)
            vs_sdpa[spec.name] = row[cfg.sdpa_len][0]
        log.info("vs SDPA: %s", vs_sdpa)
    return report(device, cfg, specs, rows, steps, vs_sdpa) + targets(device, cfg, specs, rows, steps, vs_sdpa)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--ops", default="", help="comma-separated subset of primitives")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="cap per measurement")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--devices", default="cpu,cuda",
                        help="comma-separated; cuda is skipped where it is not available")
    cfg = parser.parse_args(argv)
    if cfg.quick:
        cfg.dim, cfg.batch, cfg.lengths, cfg.step_len, cfg.sdpa_len = 32, 2, [32, 64, 128], 64, 64
    else:
        cfg.dim, cfg.batch, cfg.lengths, cfg.step_len, cfg.sdpa_len = 128, 8, [256, 1024, 4096], 1024, 512
    return cfg


def other_devices(path: Path, measured: list[str]) -> list[str]:
    """The '### <device>' subsections already in the Ops section of `path` for devices this run does
    not measure (a CPU-only run keeps the GPU table of an earlier run, and the reverse)."""
    text = path.read_text() if path.exists() else ""
    section = re.search(rf"^{re.escape(HEADING)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    parts = re.split(r"^(?=### )", section.group(1), flags=re.M) if section else []
    return [part.rstrip() + "\n" for part in parts if part.startswith("### ") and part.split()[1] not in measured]


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = parse_args(argv)
    torch.set_num_threads(cfg.threads)
    keep_freed_memory()  # as the trainer does (not in the memory probe: its process starts afresh)
    wanted = [n for n in cfg.ops.split(",") if n]
    specs = list_ops()
    unknown = set(wanted) - {s.name for s in specs}
    if unknown:
        raise SystemExit(f"unknown primitive(s) in --ops: {', '.join(sorted(unknown))}")
    specs = [s for s in specs if not wanted or s.name in wanted]
    devices = [d for d in cfg.devices.split(",") if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]
    lines = [HEADING, ""]
    for device in devices:
        lines += run_device(device, cfg, specs) + [""]
    lines += other_devices(cfg.out, devices)
    if cfg.quick:
        lines.insert(2, "Quick run (tiny sizes: a smoke test, not a measurement).\n")
    write_section("\n".join(lines), cfg.out)
    log.info("wrote %s", cfg.out)


if __name__ == "__main__":
    main()
