"""Token and channel mixers, each registered by name. See `registry.py` for the interface."""
from einsearch.ops.registry import OpSpec, aux_loss, count_params, create, get_op, list_ops, register

__all__ = ["OpSpec", "aux_loss", "count_params", "create", "get_op", "list_ops", "register"]
