"""einsearch: neural architecture search over a grammar of sequence models.

The API at this level takes task names as well as `Task` objects (`check(arch, "toy-causal")`);
the subpackages take resolved tasks. Names are imported on first use, so `import einsearch` is cheap.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Arch", "ArchError", "EinsearchError", "build", "check", "parse", "sample", "__version__"]

if TYPE_CHECKING:
    from torch import nn

    from einsearch.grammar import Arch, Report
    from einsearch.tasks import Task


def check(arch: "Arch | str", task: "Task | str") -> "Report":
    """Type-check `arch` for `task` (a name or spec is resolved) and count its parameters and FLOPs."""
    from einsearch import grammar
    from einsearch.tasks import get_task

    return grammar.check(arch, get_task(task))


def build(arch: "Arch | str", task: "Task | str") -> "nn.Module":
    """The whole model for `task` (a name or spec is resolved): stem, backbone, head."""
    from einsearch import grammar
    from einsearch.tasks import get_task

    return grammar.build(arch, get_task(task))


def sample(n: int, *, seed: int, task: "Task | str", **limits: Any) -> "list[Arch]":
    """`n` architectures for `task` (a name or spec is resolved), reproducible from `seed`."""
    from einsearch import grammar
    from einsearch.tasks import get_task

    return grammar.sample(n, seed=seed, task=get_task(task), **limits)


def __getattr__(name: str) -> Any:
    if name in ("Arch", "ArchError", "parse"):
        from einsearch import grammar

        return getattr(grammar, name)
    if name == "EinsearchError":
        from einsearch.errors import EinsearchError

        return EinsearchError
    raise AttributeError(f"module 'einsearch' has no attribute {name!r}")
