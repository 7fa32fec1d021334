"""What a results table shows about an architecture beside its metric: the compact notation,
parameters, decoding-state size, FLOPs per token and the mixer families it uses.

Derived from the canonical string and the task (`check`), cached per (string, task): the store keeps
params and FLOPs but not the state size, and a table wants all of them in one place. `check` needs
torch and the task's code, so its figures are also kept on disk per version of the code
(einsearch.memo): a results table shown again, or after the search that filled it, imports no torch.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from einsearch.grammar.compact import compact
from einsearch.memo import DiskMemo

log = logging.getLogger(__name__)
_SIZES = DiskMemo("arch-sizes")  # "task\narch" -> [params, state size, FLOPs per token] (None: not computable)

# Registry categories -> the family names a table shows ('composed' for compose(...) mixers).
FAMILY = {"attention": "attn", "recurrent": "rec", "ssm": "ssm", "convolution": "conv", "token_mlp": "tokmlp",
          "ffn": "ffn", "moe": "moe"}
TOKEN_FAMILIES = ("attn", "rec", "ssm", "conv", "tokmlp", "composed")


@dataclass(frozen=True)
class ArchFacts:
    compact: str
    params: int | None
    state_size: int | None  # decoding state per sequence at the task's length (None: not computable here)
    flops_per_token: int | None
    families: tuple[str, ...]  # token-mixing families first, then channel ones

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["families"] = list(self.families)
        return out


@lru_cache(maxsize=4096)
def parsed(text: str) -> Any:
    """The `Arch` of a canonical string (parsed once per process), or None if this einsearch cannot parse it."""
    from einsearch.grammar import ArchError, parse

    try:
        return parse(text)
    except ArchError:
        return None


def families(text: str) -> tuple[str, ...]:
    """The mixer families of a canonical string's primitives (plus 'composed'); () if it does not parse."""
    from einsearch.ops.catalogue import op_info

    arch = parsed(text)
    if arch is None:
        return ()
    found = {FAMILY.get(op_info(name).category, op_info(name).category) for name in arch.ops()}
    if any(node.kind == "compose" for node in arch.root.walk()):
        found.add("composed")
    order: dict[str, int] = {}
    for name in TOKEN_FAMILIES + tuple(FAMILY.values()):
        order.setdefault(name, len(order))
    return tuple(sorted(found, key=lambda f: (order.get(f, len(order)), f)))


def compact_text(text: str) -> str:
    """The compact notation of a canonical string (the string itself if this einsearch cannot parse it)."""
    arch = parsed(text)
    return compact(arch) if arch is not None else text


def _sizes(text: str, task: str) -> list[int | None]:
    """[params, decoding-state size, FLOPs per token] of a canonical string on a task spec (imports torch)."""
    from einsearch.grammar import ArchError, check
    from einsearch.tasks import TaskError, get_task

    try:
        arch = parsed(text)
        if arch is None:
            raise ArchError("does not parse")
        report = check(arch, get_task(task, allow_factory=False))
        return [report.params, report.state_size, report.flops_per_token]
    except (ArchError, TaskError, ValueError, KeyError) as err:
        log.debug("facts of %.60s on %s: %s", text, task, err)
        return [None, None, None]


@lru_cache(maxsize=4096)
def arch_facts(text: str, task: str | None = None) -> ArchFacts:
    """Facts of a canonical string on a task spec. Whatever cannot be computed here (an unknown task or
    primitive) is None, never an error: a table of stored results must always render."""
    params = state = flops = None
    if task is not None:
        params, state, flops = _SIZES.get(f"{task}\n{text}", lambda: _sizes(text, task))
    return ArchFacts(compact_text(text), params, state, flops, families(text))
