"""gla against a plain step-by-step loop (float64), its unit-gate identity, causality and decoding."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from einsearch.ops import create
from einsearch.ops.recurrent.chunk import gated_scan, scalar_scan
from tests.ops.recurrent.test_checks import (assert_causal, assert_matches_loop, assert_step_matches_forward, linear,
                                       rel_err)

DIM = 16
SHAPES = [(2, 1), (1, 7), (2, 33), (1, 70)]


def head_rms(o, weight, eps=1e-6):
    return o / torch.sqrt((o * o).mean(-1, keepdim=True) + eps) * weight


def reference(module, x):
    h = module.heads
    outs, s = [], 0
    for x_t in x.unbind(1):
        q = linear(x_t, module.q_proj).view(-1, h, DIM // (2 * h))
        q = q / (DIM // (2 * h)) ** 0.5
        k = linear(x_t, module.k_proj).view(-1, h, DIM // (2 * h))
        v = linear(x_t, module.v_proj).view(-1, h, DIM // h)
        pre = linear(linear(x_t, module.gate_down), module.gate_up)
        log_alpha = torch.clamp(-F.softplus(-pre) / 16, min=-5.0).view(-1, h, DIM // (2 * h))
        s = torch.exp(log_alpha)[..., None] * s + k[..., :, None] * v[..., None, :]
        o = head_rms((s * q[..., :, None]).sum(-2), module.norm.weight).flatten(1)
        g = linear(x_t, module.g_proj)
        outs.append(linear(o * g * torch.sigmoid(g), module.o_proj))
    return torch.stack(outs, 1), s


@pytest.mark.parametrize("heads,chunk", [(1, 16), (2, 32), (4, 64)])
def test_matches_loop(heads, chunk):
    torch.manual_seed(0)
    module = create("gla", DIM, causal=True, heads=heads, chunk=chunk)
    torch.nn.init.normal_(module.norm.weight)
    with torch.no_grad():  # gates from near 1 to strong decay (per-step log alpha down to about -3)
        module.gate_up.bias.copy_(torch.linspace(-50, 3, DIM // 2))
    assert_matches_loop(module, reference, DIM, SHAPES)


def test_strong_gates_float32_finite():
    """Gates at the clamp (alpha = e^-5 every step) stay finite and accurate in float32."""
    torch.manual_seed(0)
    module = create("gla", DIM, causal=True, heads=2, chunk=64)
    with torch.no_grad():
        module.gate_up.bias.fill_(-500.0)
    x = torch.randn(2, 150, DIM)
    y = module(x)
    assert torch.isfinite(y).all()
    with torch.no_grad():
        y_ref, _ = reference(module.double(), x.double())
    assert rel_err(y.double(), y_ref) < 1e-4


def test_unit_gates_equal_linear_attention():
    """GLA's mixing with all gates 1 equals identity-map linear attention (unnormalised), on the
    q, k, v that the GLA module itself produces."""
    torch.manual_seed(0)
    module = create("gla", DIM, causal=True, heads=2, chunk=16).double()
    x = torch.randn(2, 37, DIM, dtype=torch.float64)
    q, k, v, log_alpha = module._inputs(x)
    o_gla, s_gla = gated_scan(q, k, v, torch.zeros_like(log_alpha), module.chunk)
    o_lin, s_lin = scalar_scan(q, k, v, None, 32)
    assert rel_err(o_gla, o_lin) < 1e-12 and rel_err(s_gla, s_lin) < 1e-12
    linear_attention = create("linear_attention", DIM, causal=True, heads=2, feature="identity").double()
    with torch.no_grad():  # its identity-map q, k, v: project onto GLA's key width via zero padding
        linear_attention.q_proj.weight.zero_()
        linear_attention.k_proj.weight.zero_()
        linear_attention.o_proj.weight.copy_(torch.eye(DIM))
        for h in range(2):
            rows = slice(h * 8, h * 8 + 4)  # first dk = 4 of the head's 8 key channels
            linear_attention.q_proj.weight[rows] = module.q_proj.weight[h * 4:(h + 1) * 4] * 4 ** -0.5
            linear_attention.k_proj.weight[rows] = module.k_proj.weight[h * 4:(h + 1) * 4]
        linear_attention.v_proj.weight.copy_(module.v_proj.weight)
    y_lin = linear_attention(x)  # (B, L, D): heads merged
    assert rel_err(y_lin, o_gla.transpose(1, 2).flatten(2)) < 1e-12


def test_causal():
    torch.manual_seed(0)
    assert_causal(create("gla", DIM, causal=True, heads=2, chunk=16), DIM)


def test_step_matches_forward():
    torch.manual_seed(0)
    assert_step_matches_forward(create("gla", DIM, causal=True, heads=2, chunk=16), DIM)
