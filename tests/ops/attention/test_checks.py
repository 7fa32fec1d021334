"""Shared checks and plain references for the attention primitive tests (no tests of its own).

The references here are written position by position from the module's parameters; they do not
call the modules' forward code, torch's attention, or the package's rotary helpers.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from tests.ops.checks import (  # noqa: F401  (re-exported for the attention tests)
    TOL, assert_causal, assert_matches_reference, assert_step_matches_forward, linear, rel_err,
)

SHAPES = [(2, 1), (2, 7), (1, 13)]


def heads(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, L, n*d) -> (B, n, L, d)."""
    b, length, _ = x.shape
    return x.reshape(b, length, n, -1).permute(0, 2, 1, 3)


def unheads(x: torch.Tensor) -> torch.Tensor:
    """(B, n, L, d) -> (B, L, n*d)."""
    b, n, length, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, length, n * d)


def ref_rope(x: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Rotate pair (x_c, x_{c+d/2}) at position p by angle p * 10000^(-2c/d); x (..., L, d)."""
    length, d = x.shape[-2], x.shape[-1]
    half = d // 2
    rows = []
    for p in range(length):
        angle = torch.tensor([(start + p) * 10000.0 ** (-2 * c / d) for c in range(half)], dtype=x.dtype)
        a, b = x[..., p, :half], x[..., p, half:]
        rows.append(torch.cat([a * angle.cos() - b * angle.sin(), a * angle.sin() + b * angle.cos()], -1))
    return torch.stack(rows, -2)


def ref_rms(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * weight


def ref_softmax(z: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis written out (max-shifted exponentials, normalised)."""
    e = torch.exp(z - z.max(-1, keepdim=True).values)
    return e / e.sum(-1, keepdim=True)


def ref_masked_softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 allowed: Callable[[int, int], bool], scale: float | None = None) -> torch.Tensor:
    """Row by row: softmax over the keys j with allowed(i, j) of q_i.k_j * scale; q, k, v (B, H, L, d)."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    length = q.shape[-2]
    rows = []
    for i in range(length):
        keys = [j for j in range(k.shape[-2]) if allowed(i, j)]
        logits = torch.stack([(q[..., i, :] * k[..., j, :]).sum(-1) * scale for j in keys], -1)
        weights = torch.exp(logits - logits.max(-1, keepdim=True).values)
        weights = weights / weights.sum(-1, keepdim=True)
        rows.append(sum(weights[..., n, None] * v[..., j, :] for n, j in enumerate(keys)))
    return torch.stack(rows, -2)


def causal_or_full(causal: bool) -> Callable[[int, int], bool]:
    return (lambda i, j: j <= i) if causal else (lambda i, j: True)
