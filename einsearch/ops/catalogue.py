"""What the parser and the results tables need to know about each primitive, without torch.

The registry (registry.py) holds torch modules, so reading it costs a torch import (~2 s on 2
cores). Parsing a stored architecture, rendering it compactly or naming its families needs only the
static part of each registration: name, category, hyperparameter choices and defaults. That part
is an `OpInfo`; the registry's `OpSpec` extends it with the class and the size formulas. The
catalogue of the built-in primitives' `OpInfo`s is built from the registry once per version of the
code and kept on disk (einsearch.memo), so later processes read it without importing torch.

Once the registry is loaded in a process (something built a model, or a plugin registered a
primitive), `op_info` answers from it, so plugins are seen exactly as `get_op` sees them.
"""
from __future__ import annotations

import functools
import sys
from typing import Any

from einsearch.memo import DiskMemo
from einsearch.ops.info import OpInfo

_MEMO = DiskMemo("ops")


def _built_in() -> dict[str, Any]:
    """The built-in primitives' infos as JSON, read from the registry (imports torch)."""
    from einsearch.ops.registry import list_ops

    return {spec.name: OpInfo.to_json(spec) for spec in list_ops()
            if spec.cls.__module__.startswith("einsearch.ops.")}  # a plugin's code is not fingerprinted


@functools.lru_cache(maxsize=1)
def catalogue() -> dict[str, OpInfo]:
    """Every built-in primitive's `OpInfo` by name (from disk when this version of the code has one)."""
    return {name: OpInfo.from_json(data) for name, data in _MEMO.get("catalogue", _built_in).items()}


def _live_registry() -> Any:
    """The registry module if this process has loaded it (then it is the authority), else None."""
    registry = sys.modules.get("einsearch.ops.registry")
    return registry if registry is not None and registry.is_active() else None


def op_info(name: str) -> OpInfo:
    """The primitive `name`'s static description; KeyError if no primitive has that name."""
    registry = _live_registry()
    if registry is not None:
        catalogue()  # once per process, cheap with the registry loaded: a later process reads it from disk
        return registry.get_op(name)
    try:
        return catalogue()[name]
    except KeyError:
        raise KeyError(f"unknown primitive {name!r}") from None


def op_infos(category: str | None = None) -> list[OpInfo]:
    """All primitives (optionally one category), sorted by name."""
    registry = _live_registry()
    infos = registry.list_ops() if registry is not None else sorted(catalogue().values(), key=lambda i: i.name)
    return [info for info in infos if category is None or info.category == category]
