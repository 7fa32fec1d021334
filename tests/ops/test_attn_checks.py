"""Shared checks and plain references for the attention primitive tests (no tests of its own).

The references here are written position by position from the module's parameters; they do not
call the modules' forward code, torch's attention, or the package's rotary helpers.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn

TOL = 1e-6
SHAPES = [(2, 1), (2, 7), (1, 13)]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp(min=1e-300)).item()


def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """x W^T + b written out."""
    y = x @ layer.weight.T
    return y if layer.bias is None else y + layer.bias


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


def assert_matches_reference(module: nn.Module, reference: Callable[[nn.Module, torch.Tensor], torch.Tensor],
                             dim: int, shapes: list[tuple[int, int]] = SHAPES, seed: int = 0) -> None:
    """Outputs, input gradient and every parameter gradient agree with `reference` in float64."""
    module = module.double()
    names = ["input"] + [n for n, p in module.named_parameters() if p.requires_grad]
    params = [p for p in module.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(seed)
    for batch, length in shapes:
        x = torch.randn(batch, length, dim, generator=gen, dtype=torch.float64, requires_grad=True)
        y, y_ref = module(x), reference(module, x)
        assert y.shape == y_ref.shape == (batch, length, dim)
        assert rel_err(y, y_ref) < TOL, f"output, shape {(batch, length)}: rel err {rel_err(y, y_ref)}"
        upstream = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        grads = torch.autograd.grad(y, [x] + params, upstream, allow_unused=True)
        grads_ref = torch.autograd.grad(y_ref, [x] + params, upstream, allow_unused=True)
        for name, wrt, g, g_ref in zip(names, [x] + params, grads, grads_ref):
            g = torch.zeros_like(wrt) if g is None else g
            g_ref = torch.zeros_like(wrt) if g_ref is None else g_ref
            if g_ref.norm() < 1e-12:  # zero up to rounding, e.g. query weights when one key is visible
                assert g.norm() < 1e-12, f"{name}: gradient should be zero, norm {g.norm().item()}"
                continue
            assert rel_err(g, g_ref) < TOL, f"grad {name}, shape {(batch, length)}: rel err {rel_err(g, g_ref)}"


def assert_causal(module: nn.Module, dim: int, length: int = 11, t: int = 6, seed: int = 0) -> None:
    """Train mode: perturbing position t leaves outputs before t bit-identical and changes output t.
    Two deep copies run the two inputs, so stateful training forwards (EMA buffers) start equal."""
    module.train()
    gen = torch.Generator().manual_seed(seed)
    dtype = next(module.parameters()).dtype
    x = torch.randn(2, length, dim, generator=gen, dtype=dtype)
    x2 = x.clone()
    x2[:, t] += torch.randn(2, dim, generator=gen, dtype=dtype)
    with torch.no_grad():
        y, y2 = copy.deepcopy(module)(x), copy.deepcopy(module)(x2)
    assert torch.equal(y[:, :t], y2[:, :t])
    assert not torch.allclose(y[:, t], y2[:, t])


def assert_step_matches_forward(module: nn.Module, dim: int, length: int = 9, batch: int = 2, seed: int = 0) -> None:
    """Decoding token by token with init_state/step equals the causal forward (float64, eval)."""
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
