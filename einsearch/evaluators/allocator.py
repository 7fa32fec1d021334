"""Keep freed memory in the training process for reuse (glibc malloc).

Every training step allocates and frees the same large tensors. By default glibc serves blocks
above its mmap threshold (at most 32 MiB) with fresh mappings and trims the heap's free top, so
each step gives that memory back to the OS and takes it again, paying a page fault per 4 KiB page
that the kernel must zero. On the 2-core VM of bench/RESULTS.md that doubled Mamba-2's
forward+backward at L=4096 (1,013 -> 478 ms with this setting). keep_freed_memory() raises the
threshold and switches trimming off, so freed blocks are reused; the process keeps its peak
footprint instead of returning it. The trainer calls it; it is a no-op beyond glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import platform

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 1 << 30  # only blocks above 1 GiB get their own mapping
TRIM_THRESHOLD = 2**31 - 1  # never trim (mallopt takes an int)


@functools.cache
def keep_freed_memory() -> bool:
    """Sets glibc's malloc to keep freed memory in this process (once); True where it applied."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        applied = (libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                   and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    except (OSError, AttributeError):
        applied = False
    if not applied:
        log.debug("glibc mallopt refused: freed memory goes back to the OS")
    return applied
