"""Shared checks for the convolution and token-MLP primitive tests (no tests of its own).

Plain references live in each test file; these helpers compare a module against one, check
causality and check step-by-step decoding.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

TOL = 1e-6


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp(min=1e-300)).item()


def assert_matches_reference(module: nn.Module, reference: Callable[[nn.Module, torch.Tensor], torch.Tensor],
                             dim: int, shapes: list[tuple[int, int]], seed: int = 0) -> None:
    """Outputs, input gradient and every parameter gradient agree with `reference` in float64."""
    module = module.double()
    params = [p for p in module.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(seed)
    for batch, length in shapes:
        x = torch.randn(batch, length, dim, generator=gen, dtype=torch.float64, requires_grad=True)
        y = module(x)
        y_ref = reference(module, x)
        assert y.shape == y_ref.shape == (batch, length, dim)
        assert rel_err(y, y_ref) < TOL, f"output, shape {(batch, length)}: rel err {rel_err(y, y_ref)}"
        upstream = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        grads = torch.autograd.grad(y, [x] + params, upstream, allow_unused=True)
        grads_ref = torch.autograd.grad(y_ref, [x] + params, upstream, allow_unused=True)
        names = ["input"] + [n for n, p in module.named_parameters() if p.requires_grad]
        for name, wrt, g, g_ref in zip(names, [x] + params, grads, grads_ref):
            # no gradient (the output does not depend on it) is a zero gradient
            g = torch.zeros_like(wrt) if g is None else g
            g_ref = torch.zeros_like(wrt) if g_ref is None else g_ref
            if g_ref.norm() == 0:
                assert g.norm() == 0, f"{name}: gradient should be zero"
                continue
            assert rel_err(g, g_ref) < TOL, f"grad {name}, shape {(batch, length)}: rel err {rel_err(g, g_ref)}"


def perturb_outputs(module: nn.Module, dim: int, length: int, t: int, seed: int = 0):
    """Outputs for a random input and for the same input changed at position t (train mode)."""
    module.train()
    gen = torch.Generator().manual_seed(seed)
    dtype = next(module.parameters()).dtype
    x = torch.randn(2, length, dim, generator=gen, dtype=dtype)
    x2 = x.clone()
    x2[:, t] += torch.randn(2, dim, generator=gen, dtype=dtype)
    with torch.no_grad():
        return module(x), module(x2)


def assert_causal(module: nn.Module, dim: int, length: int = 11, t: int = 6) -> None:
    """Perturbing position t leaves outputs before t bit-identical and changes output t."""
    y, y2 = perturb_outputs(module, dim, length, t)
    assert torch.equal(y[:, :t], y2[:, :t])
    assert not torch.allclose(y[:, t:], y2[:, t:])


def assert_causal_fft(module: nn.Module, dim: int, length: int = 11, t: int = 6) -> None:
    """Causality for FFT convolutions, which are causal up to rounding only: in float64, outputs
    before t move by less than 1e-12 of the change at and after t (a leak would be O(1))."""
    module = module.double()
    y, y2 = perturb_outputs(module, dim, length, t)
    before = (y[:, :t] - y2[:, :t]).abs().max()
    after = (y[:, t:] - y2[:, t:]).abs().max()
    assert after > 1e-3
    assert before <= 1e-12 * after, f"leak before t: {before.item()} vs {after.item()}"


def assert_step_matches_forward(module: nn.Module, dim: int, length: int = 9, batch: int = 2, seed: int = 0) -> None:
    """Decoding token by token with init_state/step equals the causal forward (float64)."""
    module = module.double().eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, dim, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        y = module(x)
        state = module.init_state(batch, dtype=torch.float64)
        outs = []
        for x_t in x.unbind(1):
            y_t, state = module.step(x_t, state)
            outs.append(y_t)
    assert rel_err(torch.stack(outs, 1), y) < 1e-10


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


def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """x W^T + b written out (so references do not call the module's layers)."""
    y = x @ layer.weight.T
    return y if layer.bias is None else y + layer.bias


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
