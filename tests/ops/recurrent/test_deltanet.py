"""deltanet against a plain step-by-step loop (float64), plus causality and decoding."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from einsearch.ops import create
from tests.ops.recurrent.test_checks import (assert_causal, assert_matches_loop, assert_step_matches_forward, causal_conv,
                                       linear)
from tests.ops.recurrent.test_gla import head_rms

DIM = 16
SHAPES = [(2, 1), (1, 7), (2, 33), (1, 70)]


def silu(x):
    return x * torch.sigmoid(x)


def unit(x):
    return x / torch.sqrt((x * x).sum(-1, keepdim=True) + 1e-6)


def reference(module, x, gated=False):
    """Token loop of S = a (S - beta k (k^T S)) + beta k v^T, from the module's parameters."""
    h, d = module.heads, DIM // module.heads
    q_all, k_all, v_all = (silu(causal_conv(linear(x, proj), conv.conv))
                           for proj, conv in zip([module.q_proj, module.k_proj, module.v_proj], module.convs))
    outs, s = [], torch.zeros(x.shape[0], h, d, d, dtype=x.dtype)
    for t, x_t in enumerate(x.unbind(1)):
        q = unit(q_all[:, t].view(-1, h, d)) / d ** 0.5
        k = unit(k_all[:, t].view(-1, h, d))
        v = v_all[:, t].view(-1, h, d)
        beta = torch.sigmoid(linear(x_t, module.b_proj))[..., None, None]  # (B, H, 1, 1)
        if gated:
            dt = F.softplus(linear(x_t, module.a_proj) + module.dt_bias)
            s = torch.exp(-torch.exp(module.A_log) * dt)[..., None, None] * s
        s = s - beta * k[..., :, None] * (k[..., None, :] @ s) + beta * k[..., :, None] * v[..., None, :]
        o = head_rms((s * q[..., :, None]).sum(-2), module.norm.weight).flatten(1)
        if gated:
            o = o * silu(linear(x_t, module.g_proj))
        outs.append(linear(o, module.o_proj))
    return torch.stack(outs, 1), s


@pytest.mark.parametrize("heads,chunk", [(1, 16), (2, 32), (4, 64)])
def test_matches_loop(heads, chunk):
    torch.manual_seed(0)
    module = create("deltanet", DIM, causal=True, heads=heads, chunk=chunk)
    torch.nn.init.normal_(module.norm.weight)
    assert_matches_loop(module, reference, DIM, SHAPES)


def test_causal():
    torch.manual_seed(0)
    assert_causal(create("deltanet", DIM, causal=True, heads=2, chunk=16), DIM)


def test_step_matches_forward():
    torch.manual_seed(0)
    assert_step_matches_forward(create("deltanet", DIM, causal=True, heads=2, chunk=16), DIM)
