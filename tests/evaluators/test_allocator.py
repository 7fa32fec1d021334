import platform
import resource

import pytest
import torch

from einsearch.evaluators.allocator import keep_freed_memory


def _page_faults_of_one_round() -> int:
    """Minor page faults taken while a 64 MiB tensor (16,384 pages) is made, written and freed."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones(16 * 2**20)
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc malloc setting")
def test_freed_memory_is_reused_without_page_faults():
    """glibc's default maps those 64 MiB afresh each round (above its 32 MiB mmap cap) and faults
    every page in again (16,385 faults a round, seen here). Kept, once the heap has grown to hold
    them (a round or two: small allocations may take part of a freed block), rounds reuse them:
    the last four together fault fewer pages than one round."""
    assert keep_freed_memory()
    rounds = [_page_faults_of_one_round() for _ in range(8)]
    assert sum(rounds[-4:]) < 16384, rounds
