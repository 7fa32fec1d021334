"""Shared checks for the convolution and token-MLP primitive tests (no tests of its own).

Plain references live in each test file; these helpers compare a module against one, check
causality and check step-by-step decoding.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from tests.ops.checks import (  # noqa: F401  (re-exported for the convolution tests)
    TOL, assert_causal, assert_causal_fft, assert_matches_reference, assert_step_matches_forward, linear, rel_err,
)



def ref_depthwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, causal: bool) -> torch.Tensor:
    """Plain depthwise conv: x (B, L, C), weight (C, k). Causal: y_t = sum_j w_j x_{t-k+1+j};
    centred: the window starts at t - (k-1)//2. Out-of-range inputs count as zero."""
    length, k = x.shape[1], weight.shape[1]
    start = k - 1 if causal else (k - 1) // 2
    rows = []
    for t in range(length):
        acc = torch.zeros_like(x[:, 0]) if bias is None else bias.expand_as(x[:, 0])
        for j in range(k):
            s = t - start + j
            if 0 <= s < length:
                acc = acc + weight[:, j] * x[:, s]
        rows.append(acc)
    return torch.stack(rows, 1)


def ref_causal_conv(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Direct causal long convolution: y_t = sum_{s<=t} kernel[:, t-s] x_s; x (B, L, C), kernel (C, L)."""
    length = x.shape[1]
    rows = []
    for t in range(length):
        acc = torch.zeros_like(x[:, 0])
        for s in range(t + 1):
            acc = acc + kernel[:, t - s] * x[:, s]
        rows.append(acc)
    return torch.stack(rows, 1)


def ref_implicit_filter(filt: nn.Module, length: int) -> torch.Tensor:
    """The implicit filter (C, length) recomputed plainly from its parameters, position by position."""
    linears = [m for m in filt.ffn if isinstance(m, nn.Linear)]
    sin_freqs = [m.freq for m in filt.ffn if not isinstance(m, nn.Linear)]
    bands = filt.bands
    # Hyena's band indices: linspace(1e-4, bands - 1, bands)
    band_index = [1e-4 + (bands - 1 - 1e-4) * b / max(bands - 1, 1) for b in range(bands)]
    channels = linears[-1].weight.shape[0]
    slow, fast = math.log(1e-2) / 1.5, math.log(1e-2) / 0.3
    rates = [abs(slow + (fast - slow) * c / max(channels - 1, 1)) for c in range(channels)]
    columns = []
    for lag in range(length):
        t = lag / 1024
        feats = [t] + [math.cos(2 * math.pi * b * lag / 1024) for b in band_index]
        feats += [-math.sin(2 * math.pi * b * lag / 1024) for b in band_index]
        h = torch.tensor(feats, dtype=torch.float64)
        for i, layer in enumerate(linears):
            h = linear(h, layer)
            if i < len(sin_freqs):
                h = torch.sin(sin_freqs[i] * h)
        decay = torch.tensor([math.exp(-t * r) for r in rates], dtype=torch.float64)
        columns.append(h * decay)
    return torch.stack(columns, 1)
