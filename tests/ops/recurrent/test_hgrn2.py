"""hgrn2 against a plain step-by-step loop (float64), plus causality and decoding."""
from __future__ import annotations

import pytest
import torch

from einsearch.ops import create
from tests.ops.recurrent.test_checks import assert_causal, assert_matches_loop, assert_step_matches_forward, linear
from tests.ops.recurrent.test_gla import head_rms

DIM = 16
SHAPES = [(2, 1), (1, 7), (2, 33), (1, 70)]


def reference(module, x):
    h, lb, d = module.heads, module.lower_bound, DIM // module.heads
    outs, s = [], 0
    for x_t in x.unbind(1):
        f = lb + (1 - lb) / (1 + torch.exp(-linear(x_t, module.f_proj)))
        f = torch.clamp(f, min=torch.exp(torch.tensor(-5.0, dtype=x.dtype)).item()).view(-1, h, d)
        pre_q = linear(x_t, module.q_proj)
        q = (pre_q * torch.sigmoid(pre_q)).view(-1, h, d)
        v = linear(x_t, module.v_proj).view(-1, h, d)
        s = f[..., None] * s + (1 - f)[..., :, None] * v[..., None, :]
        o = head_rms((s * q[..., :, None]).sum(-2), module.norm.weight).flatten(1)
        outs.append(linear(o, module.o_proj))
    return torch.stack(outs, 1), s


@pytest.mark.parametrize("heads,lower_bound,chunk", [(1, 0.0, 16), (2, 0.5, 32), (4, 0.9, 64)])
def test_matches_loop(heads, lower_bound, chunk):
    torch.manual_seed(0)
    module = create("hgrn2", DIM, causal=True, heads=heads, lower_bound=lower_bound, chunk=chunk)
    torch.nn.init.normal_(module.norm.weight)
    with torch.no_grad():  # spread the gates so that some forget fast
        module.f_proj.bias.copy_(torch.linspace(-4, 4, DIM))
    assert_matches_loop(module, reference, DIM, SHAPES)


def test_causal():
    torch.manual_seed(0)
    assert_causal(create("hgrn2", DIM, causal=True, heads=2, chunk=16), DIM)


@pytest.mark.parametrize("lower_bound", [0.0, 0.9])
def test_step_matches_forward(lower_bound):
    torch.manual_seed(0)
    assert_step_matches_forward(create("hgrn2", DIM, causal=True, heads=2, lower_bound=lower_bound, chunk=16), DIM)
