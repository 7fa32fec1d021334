"""Token and channel mixers, each registered by name. See `registry.py` for the interface.

The registry's names are loaded on first use (PEP 562): the registry imports torch, and
`einsearch.ops.catalogue`, which the parser reads, must stay importable without it.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from einsearch.ops.registry import OpSpec, aux_loss, count_params, create, get_op, list_ops, register

__all__ = ["OpSpec", "aux_loss", "count_params", "create", "get_op", "list_ops", "register"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("einsearch.ops.registry"), name)
    raise AttributeError(f"module 'einsearch.ops' has no attribute {name!r}")
