"""Attention-pattern analysis (after UNIP, Zhang et al. 2025): is each attention layer local, hybrid or global?

UNIP finds three typical patterns in trained vision transformers: local (each query attends near
itself), global (every query attends the same few tokens, wherever it is) and hybrid (both). Here
each attention layer's matrices A (B, H, L, L), from its primitive's `attention_weights(x)` on the
layer's real input (captured with a forward hook on a few held-out sequences), are summarised by

- local mass: the share of each row within a window around the diagonal, |i - j| <= w with
  w = max(1, L // 16) (on a 2-D token grid: neighbouring cells, Chebyshev distance <= 1);
- global mass: the share of each row on the k most-attended keys of that matrix (largest column
  mean, k = max(1, L // 32)), counting only keys outside the query's window.

Both are averaged over queries, heads and sequences; rows are normalised to sum 1 first (sigmoid
attention's rows do not). A layer (or head) is `hybrid` when both masses are >= HYBRID_MIN; else
`local` when the local mass is >= LOCAL_MAJORITY; else `global` (its mass lies far from the query:
on a few tokens, or spread out). UNIP itself separates the patterns by the normalised mutual
information between query and key positions; the masses here are the simpler reading the issue asks for.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import torch
from torch import nn

log = logging.getLogger(__name__)

HYBRID_MIN = 0.2  # both masses at least this: hybrid
LOCAL_MAJORITY = 0.5  # local mass at least this (and not hybrid): local
MAX_ITEMS = 8  # sequences analysed
MAX_LEN = 2048  # longer sequences are not analysed (an L x L matrix per head)


def window_mask(length: int, grid: tuple[int, int] | None = None) -> torch.Tensor:
    """(L, L) bool: key j is near query i."""
    if grid is not None and grid[0] * grid[1] == length:
        rows = torch.arange(length) // grid[1]
        cols = torch.arange(length) % grid[1]
        dist = torch.maximum((rows[:, None] - rows[None]).abs(), (cols[:, None] - cols[None]).abs())
        return dist <= 1
    w = max(1, length // 16)
    pos = torch.arange(length)
    return (pos[:, None] - pos[None]).abs() <= w


def global_count(length: int) -> int:
    return max(1, length // 32)


def masses(weights: torch.Tensor, grid: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention matrices (..., L, L) -> (local mass, global mass), each (...,) averaged over queries."""
    a = weights.double()
    a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)  # rows sum to 1
    length = a.shape[-1]
    near = window_mask(length, grid).to(a.device)
    local = (a * near).sum(-1).mean(-1)
    top = a.mean(-2).topk(global_count(length), dim=-1).indices  # (..., k) most-attended keys
    chosen = torch.zeros_like(a[..., 0, :], dtype=torch.bool).scatter(-1, top, True)  # (..., L)
    far_on_top = chosen[..., None, :] & ~near  # (..., L, L)
    glob = (a * far_on_top).sum(-1).mean(-1)
    return local, glob


def classify(local: float, glob: float) -> str:
    """'local', 'hybrid' or 'global' from the two masses."""
    if local >= HYBRID_MIN and glob >= HYBRID_MIN:
        return "hybrid"
    return "local" if local >= LOCAL_MAJORITY else "global"


def classify_matrices(weights: torch.Tensor, grid: tuple[int, int] | None = None) -> dict[str, Any]:
    """One layer's matrices (B, H, L, L) -> {pattern, local, global, heads: [pattern per head]}."""
    local, glob = masses(weights, grid)  # (B, H)
    head_local, head_glob = local.mean(0), glob.mean(0)  # (H,)
    layer_local, layer_glob = float(head_local.mean()), float(head_glob.mean())
    return {"pattern": classify(layer_local, layer_glob), "local": round(layer_local, 4),
            "global": round(layer_glob, 4),
            "heads": [classify(float(lo), float(gl)) for lo, gl in zip(head_local, head_glob)]}


def attention_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(module path, module) of every layer with an explicit attention matrix (`attention_weights`)."""
    return [(name, m) for name, m in model.named_modules() if callable(getattr(m, "attention_weights", None))]


@torch.no_grad()
def analyse(model: nn.Module, inputs: Sequence[torch.Tensor],
            grid: tuple[int, int] | None = None) -> list[dict[str, Any]] | None:
    """Pattern of each attention layer of `model` on model inputs (batches); None when it has none.

    Each entry: {layer, op, pattern, local, global, heads}. At most MAX_ITEMS sequences are used.
    """
    layers = attention_layers(model)
    if not layers:
        return None
    captured: dict[str, list[torch.Tensor]] = {name: [] for name, _ in layers}

    def keep(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            captured[name].append(args[0].detach())
        return hook

    handles = [m.register_forward_pre_hook(keep(name)) for name, m in layers]
    was_training = model.training
    model.eval()
    try:
        left = MAX_ITEMS
        for batch in inputs:
            if left <= 0:
                break
            model(batch[:left])
            left -= min(left, len(batch))
        out = []
        for name, module in layers:
            if not captured[name]:
                continue  # not reached by forward (e.g. an unused branch)
            x = torch.cat(captured[name]).float()  # (items, L, D)
            if x.shape[1] > MAX_LEN:
                log.info("attention patterns: %s skipped (L=%d > %d)", name, x.shape[1], MAX_LEN)
                continue
            weights = torch.cat([module.attention_weights(x[i:i + 1]).float() for i in range(len(x))])
            entry = {"layer": name, "op": getattr(module, "op_name", type(module).__name__)}
            entry.update(classify_matrices(weights, grid))
            out.append(entry)
        return out
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


def summary(patterns: list[dict[str, Any]] | None) -> str:
    """One line: 'local, hybrid, global' for the layers in order, or 'none'."""
    if not patterns:
        return "none"
    return ", ".join(p["pattern"] for p in patterns)
