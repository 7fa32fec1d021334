"""The architecture grammar: parse, sample, check, build, and tree operations for search."""
from __future__ import annotations

import random

from einsearch.grammar.check import Report, build, check
from einsearch.grammar.parser import parse
from einsearch.grammar.sampler import Limits, Sampler
from einsearch.grammar.shape import TaskShape
from einsearch.grammar.tree import Arch, ArchError, Node


def sample(n: int, *, seed: int, task: TaskShape, max_params: int | None = None,
           max_blocks: int = 8, max_mod_depth: int = 3) -> list[Arch]:
    """`n` architectures for `task`, reproducible from `seed`, each within the limits."""
    if n < 0:
        raise ArchError(f"sample: n must be >= 0, got {n}")
    sampler = Sampler(task, Limits(max_params=max_params, max_blocks=max_blocks, max_mod_depth=max_mod_depth))
    rng = random.Random(seed)
    return [Arch(sampler.net(rng)) for _ in range(n)]


__all__ = ["Arch", "ArchError", "Limits", "Node", "Report", "Sampler", "TaskShape", "build", "check", "parse",
           "sample"]
