"""Shared checks for the recurrent primitive tests (no tests of its own).

Each recurrent module exposes `scan(x) -> (y, state)`; the plain step-by-step references live in
the test files and return (y, S_final) computed from the module's parameters.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from tests.ops import checks
from tests.ops.checks import TOL, assert_matches_loop, linear, rel_err  # noqa: F401  (re-exported)

def causal_conv(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """Plain causal depthwise conv, x (B, L, C): y_t = b + sum_j w_j x_{t-k+1+j} (zeros before 0)."""
    weight = conv.weight.squeeze(1)  # (C, k)
    k = weight.shape[1]
    rows = []
    for t in range(x.shape[1]):
        acc = torch.zeros_like(x[:, 0]) if conv.bias is None else conv.bias.expand_as(x[:, 0])
        for j in range(k):
            if t - k + 1 + j >= 0:
                acc = acc + weight[:, j] * x[:, t - k + 1 + j]
        rows.append(acc)
    return torch.stack(rows, 1)

def assert_causal(module: nn.Module, dim: int, length: int = 41, t: int = 19, seed: int = 0) -> None:
    """Long enough to cross chunk boundaries of the chunked forms."""
    checks.assert_causal(module, dim, length, t, seed)

def assert_step_matches_forward(module: nn.Module, dim: int, length: int = 21, prefix: int = 8,
                                batch: int = 2, seed: int = 0) -> None:
    """Decoding equals forward; the decoded state equals scan's; prefill by scan then decoding works."""
    checks.assert_step_matches_forward(module, dim, length, batch, seed, prefix=prefix)
