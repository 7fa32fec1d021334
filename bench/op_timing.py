"""Timing and peak-memory helpers of the mixer benchmarks (bench/ops.py, bench/cpu_kernels.py).

Time: the fastest of a few forward+backward calls after a warm-up, each under an alarm (`time_call`).
Peak memory: CUDA's max_memory_allocated, or on a CPU the peak RSS sampled by a thread in a spawned
process with glibc's MALLOC_MMAP_THRESHOLD_ at 64 KiB, so freed tensors go back to the OS and RSS
follows the live tensors (`MemoryProbe`; bench/ops.py's docstring says what that includes).
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from einsearch.ops import aux_loss, create, get_op
from einsearch.ops.registry import OpSpec

MMAP_THRESHOLD = "65536"


class Timeout(Exception):
    pass


@contextmanager
def deadline(seconds: float):
    """Raise Timeout in this (main) thread after `seconds` (checked between Python bytecodes)."""
    def on_alarm(signum, frame):
        raise Timeout()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class RssPeak:
    """Peak resident set size above the starting RSS, sampled by a thread (Linux /proc)."""

    def __init__(self, interval: float = 0.001):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss() - self.base)
            time.sleep(self.interval)

    def __enter__(self) -> "RssPeak":
        self.base = self._rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss() - self.base)


def fwd_bwd(module: torch.nn.Module, x: torch.Tensor, device: str) -> None:
    module.zero_grad(set_to_none=True)
    xi = x.detach().requires_grad_()
    y = module(xi)
    loss = y.pow(2).mean()
    extra = aux_loss(module)
    if extra is not None:
        loss = loss + extra
    loss.backward()
    sync(device)


def time_call(fn, max_seconds: float, reps: int = 5) -> float:
    """Fastest of up to `reps` calls of fn() after one warm-up (fewer when slow; Timeout past the cap).

    The fastest, not the median: on a shared machine (this VM) the same call varies by up to 2x
    between runs, the noise only ever adds time, and the fastest run is the most repeatable."""
    with deadline(max_seconds):
        start = time.perf_counter()
        fn()  # warm-up (allocator, lazy init)
        warm = time.perf_counter() - start
    times = []
    spent = 0.0
    while len(times) < reps and (len(times) < 1 or spent + warm < max_seconds):
        with deadline(max_seconds):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        spent += times[-1]
    return min(times)


def peak_memory(fn, device: str) -> int:
    """Bytes above the baseline at the peak of one call of fn()."""
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        return torch.cuda.max_memory_allocated() - base
    if not Path("/proc/self/statm").exists():
        return -1
    with RssPeak() as rss:
        fn()
    return rss.peak


def _cpu_peak_worker(name: str, dim: int, batch: int, length: int, threads: int) -> int:
    """Runs in the memory probe's process: one warm-up call, then the peak of one more."""
    torch.set_num_threads(threads)
    module = build(get_op(name), dim, length, "cpu")
    x = torch.randn(batch, length, dim)
    fwd_bwd(module, x, "cpu")
    return peak_memory(lambda: fwd_bwd(module, x, "cpu"), "cpu")


class MemoryProbe:
    """Measures CPU peak memory in one spawned worker started with MALLOC_MMAP_THRESHOLD_ set
    (glibc reads it at start-up), so that timings elsewhere keep the default allocator."""

    def __init__(self, threads: int):
        self.threads = threads
        previous = os.environ.get("MALLOC_MMAP_THRESHOLD_")
        os.environ["MALLOC_MMAP_THRESHOLD_"] = MMAP_THRESHOLD
        try:  # the worker process starts now and inherits the environment
            self.pool = multiprocessing.get_context("spawn").Pool(1)
        finally:
            if previous is None:
                del os.environ["MALLOC_MMAP_THRESHOLD_"]
            else:
                os.environ["MALLOC_MMAP_THRESHOLD_"] = previous

    def peak(self, spec: OpSpec, dim: int, batch: int, length: int) -> int:
        return self.pool.apply(_cpu_peak_worker, (spec.name, dim, batch, length, self.threads))

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


def build(spec: OpSpec, dim: int, seq_len: int, device: str) -> torch.nn.Module:
    causal = spec.causal  # causal mode where the primitive has one (language modelling)
    torch.manual_seed(0)
    return create(spec.name, dim, causal=causal, seq_len=seq_len).to(device).train()


def warm_up(device: str, seconds: float = 2.0) -> None:
    """Busy the threads for a moment so that the first measured op does not pay their start-up."""
    a = torch.randn(512, 512, device=device)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        a = torch.tanh(a @ a)
    sync(device)
