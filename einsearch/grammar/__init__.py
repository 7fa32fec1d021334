"""The architecture grammar: parse, sample, check, build, and tree operations for search.

Names are loaded on first use (PEP 562): `parse` and the tree need neither torch nor the registry
(the parser reads einsearch.ops.catalogue), while `check`, `build` and the sampler import torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from einsearch.grammar.checker import Report, build, check
    from einsearch.grammar.parser import parse
    from einsearch.grammar.sampler import Limits, Sampler
    from einsearch.grammar.shape import TaskShape
    from einsearch.grammar.tree import Arch, ArchError, Node

_HOME = {"Report": "checker", "build": "checker", "check": "checker", "parse": "parser", "Limits": "sampler",
         "Sampler": "sampler", "TaskShape": "shape", "Arch": "tree", "ArchError": "tree", "Node": "tree"}


def sample(n: int, *, seed: int, task: TaskShape, max_params: int | None = None,
           max_blocks: int = 8, max_mod_depth: int = 3) -> list[Arch]:
    """`n` architectures for `task`, reproducible from `seed`, each within the limits."""
    import random

    from einsearch.grammar.sampler import Limits, Sampler
    from einsearch.grammar.tree import Arch, ArchError

    if n < 0:
        raise ArchError(f"sample: n must be >= 0, got {n}")
    sampler = Sampler(task, Limits(max_params=max_params, max_blocks=max_blocks, max_mod_depth=max_mod_depth))
    rng = random.Random(seed)
    return [Arch(sampler.net(rng)) for _ in range(n)]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"einsearch.grammar.{_HOME[name]}"), name)
    raise AttributeError(f"module 'einsearch.grammar' has no attribute {name!r}")


__all__ = ["Arch", "ArchError", "Limits", "Node", "Report", "Sampler", "TaskShape", "build", "check", "parse",
           "sample"]
