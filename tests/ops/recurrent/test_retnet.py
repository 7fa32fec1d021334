"""retnet against a plain step-by-step loop (float64), plus causality and decoding."""
from __future__ import annotations

import math

import pytest
import torch

from einsearch.ops import create
from tests.ops.recurrent.test_checks import assert_causal, assert_matches_loop, assert_step_matches_forward, linear

DIM = 16
SHAPES = [(2, 1), (1, 7), (2, 33), (1, 70)]


def rotate(x, t):
    """RoPE at position t on (B, H, d): channel pairs (i, i + d/2) turned by t * 10000^(-2i/d)."""
    d = x.shape[-1]
    half = d // 2
    angle = torch.tensor([t * 10000.0 ** (-2 * i / d) for i in range(half)], dtype=x.dtype)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * angle.cos() - b * angle.sin(), a * angle.sin() + b * angle.cos()], -1)


def group_norm(o, norm, heads):
    """o (B, D): per head (B, H, d) standardised (biased variance), then the affine per channel."""
    g = o.view(o.shape[0], heads, -1)
    g = (g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + norm.eps)
    return g.flatten(1) * norm.weight + norm.bias


def reference(module, x):
    h = module.heads
    d = DIM // h
    gamma = torch.tensor([1 - 2.0 ** (-5 - i) for i in range(h)], dtype=x.dtype)[None, :, None, None]
    outs, s = [], 0
    for t, x_t in enumerate(x.unbind(1)):
        q = rotate(linear(x_t, module.q_proj).view(-1, h, d), t)
        k = rotate(linear(x_t, module.k_proj).view(-1, h, d), t) / math.sqrt(d)
        v = linear(x_t, module.v_proj).view(-1, h, d)
        s = gamma * s + k[..., :, None] * v[..., None, :]
        o = group_norm((s * q[..., :, None]).sum(-2).flatten(1), module.norm, h)
        g = linear(x_t, module.g_proj)
        outs.append(linear(g * torch.sigmoid(g) * o, module.o_proj))
    return torch.stack(outs, 1), s


@pytest.mark.parametrize("heads,chunk", [(1, 16), (2, 32), (4, 64)])
def test_matches_loop(heads, chunk):
    torch.manual_seed(0)
    module = create("retnet", DIM, causal=True, heads=heads, chunk=chunk)
    # non-trivial norm affine, so its gradient is tested at a generic point
    torch.nn.init.normal_(module.norm.weight)
    torch.nn.init.normal_(module.norm.bias)
    assert_matches_loop(module, reference, DIM, SHAPES)


def test_causal():
    torch.manual_seed(0)
    assert_causal(create("retnet", DIM, causal=True, heads=2, chunk=16), DIM)


def test_step_matches_forward():
    torch.manual_seed(0)
    assert_step_matches_forward(create("retnet", DIM, causal=True, heads=2, chunk=16), DIM)


def test_odd_head_width_rejected():
    with pytest.raises(ValueError, match="even"):
        create("retnet", 12, causal=True, heads=4)
