"""C kernels for the CPU, compiled at first use and called through ctypes.

Some ops have no fast form in PyTorch ops on a CPU. Mamba-1's selective scan: every op writes
a full (B, L, D, N) tensor to memory, while the recurrence itself needs one state in cache. The
short depthwise convolution: k shifted multiply-adds whose backward allocates a full-size gradient
per tap. Their C sources live in einsearch/ops/kernels/csrc/ (shared code in kernel_common.h). At first
use, gcc builds each into a shared library, once per source, machine and float type, cached under
$EINSEARCH_KERNEL_CACHE (default ~/.cache/einsearch/kernels); later processes load the cached file.
Without a compiler, or with EINSEARCH_CPU_KERNELS=0, `load` returns None and callers use their
PyTorch path (see `accelerated`).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import torch

log = logging.getLogger(__name__)

SOURCES = Path(__file__).parent / "csrc"
# -march=native: the library is built on, and cached for, the machine that runs it (the cpu flags
# are part of the cache key). -fopenmp: the parallel loop runs on the libgomp that torch loaded (see
# kernel_common.h). Without math errno and floating-point traps, floor and the comparisons vectorise;
# with reassociation, a sum's vector lanes are added as a tree (else one scalar add after another).
FLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math",
         "-fno-signed-zeros", "-fPIC", "-shared")
REALS = {"float32": "float", "float64": "double"}


def enabled() -> bool:
    return os.environ.get("EINSEARCH_CPU_KERNELS", "1") != "0"


def _cache_dir() -> Path:
    """$EINSEARCH_KERNEL_CACHE, else ~/.cache/einsearch/kernels, else (no writable home) a folder
    in the temporary directory."""
    if "EINSEARCH_KERNEL_CACHE" in os.environ:
        return Path(os.environ["EINSEARCH_KERNEL_CACHE"])
    default = Path.home() / ".cache" / "einsearch" / "kernels"
    existing = next(p for p in (default, *default.parents) if p.exists())
    if os.access(existing, os.W_OK):
        return default
    return Path(tempfile.gettempdir()) / "einsearch-kernels"


def _cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    return next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")


def _build(source: Path, real: str, target: Path) -> None:
    """Compiles into a temporary file and renames it: concurrent builders never see half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".so", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        subprocess.run(["gcc", *FLAGS, f"-DREAL={real}", f"-I{SOURCES}", "-o", str(partial), str(source)],
                       check=True, capture_output=True, text=True, timeout=300)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


@functools.cache
def _load_cached(name: str, dtype: str) -> ctypes.CDLL | None:
    source = SOURCES / f"{name}.c"
    headers = [h.read_text() for h in sorted(SOURCES.glob("*.h"))]
    parts = [source.read_text(), *headers, *FLAGS, _cpu_flags(), platform.machine()]
    key = hashlib.sha256("\0".join(parts).encode())
    target = _cache_dir() / f"{name}-{REALS[dtype]}-{key.hexdigest()[:16]}.so"
    if not target.exists():
        if shutil.which("gcc") is None:
            log.warning("no gcc on this machine: %s runs on its slower PyTorch path", name)
            return None
        try:
            _build(source, REALS[dtype], target)
        except (OSError, subprocess.SubprocessError) as err:
            detail = getattr(err, "stderr", "") or err
            log.warning("building %s failed (%s): it runs on its slower PyTorch path", source, str(detail).strip())
            return None
        for stale in target.parent.glob(f"{name}-{REALS[dtype]}-*.so"):  # builds of older sources
            if stale != target:
                stale.unlink(missing_ok=True)
    return ctypes.CDLL(str(target))


def load(name: str, dtype: str) -> ctypes.CDLL | None:
    """The compiled kernel library `name` (csrc/<name>.c) for dtype 'float32' or 'float64', or None
    where it cannot be used (switched off, another dtype, no compiler, the build failed)."""
    if not enabled() or dtype not in REALS:
        return None
    return _load_cached(name, dtype)


def pointer(t: torch.Tensor | None) -> ctypes.c_void_p:
    """A tensor's data pointer for a kernel argument (NULL for None)."""
    return ctypes.c_void_p(None if t is None else t.data_ptr())


def check(status: int, name: str) -> None:
    """A kernel call's status: nonzero when a thread could not allocate its workspace."""
    if status:
        raise MemoryError(f"{name} kernel: out of memory for its per-thread workspace")


def for_tensors(name: str, *tensors: torch.Tensor | None) -> ctypes.CDLL | None:
    """The kernel library `name` for these tensors (None entries ignored) where it applies: all on
    the CPU in one float dtype, in eager mode (a tracer, torch.export or torch.compile would not
    see inside a ctypes call)."""
    given = [t for t in tensors if t is not None]
    if any(t.device.type != "cpu" or t.dtype != given[0].dtype for t in given):
        return None
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return None
    return load(name, str(given[0].dtype).removeprefix("torch."))


def accelerated(fast: Callable) -> Callable[[Callable], Callable]:
    """Decorates a PyTorch function with a fast path of the same signature that returns None where
    it does not apply: calls run `fast` first and the PyTorch function when it gives None.
    Exported models leave the decorator out (einsearch.export), so they run the PyTorch form."""
    def decorate(plain: Callable) -> Callable:
        @functools.wraps(plain)
        def run(*args, **kwargs):
            out = fast(*args, **kwargs)
            return plain(*args, **kwargs) if out is None else out
        return run
    return decorate
