import pytest
import torch

from einsearch.ops import create
from tests.ops.conv.test_checks import (
    assert_causal_fft, assert_matches_reference, assert_step_matches_forward, linear, ref_depthwise,
)

SHAPES = [(2, 1), (2, 6), (1, 11)]


def reference(module, x):
    """Shift conv, then the diagonal SSM as a step-by-step complex recurrence (ZOH, B = 1)."""
    dim = x.shape[-1]
    qkv = linear(x, module.qkv)
    q, k, v = qkv[..., :dim], qkv[..., dim:2 * dim], qkv[..., 2 * dim:]
    kv = ref_depthwise(k, module.shift.weight[:, 0], None, causal=True) * v  # (B, L, D)
    ssm = module.ssm
    a = torch.complex(-torch.exp(ssm.log_neg_a_real), ssm.a_imag)  # (D, M)
    decay = torch.exp(torch.exp(ssm.log_dt)[:, None] * a)
    c = torch.complex(ssm.c[..., 0], ssm.c[..., 1]) * (decay - 1) / a
    state = torch.zeros(x.shape[0], dim, a.shape[1], dtype=torch.complex128)
    outs = []
    for t in range(x.shape[1]):
        state = decay * state + kv[:, t, :, None]
        outs.append(2 * (c * state).sum(-1).real + module.skip * kv[:, t])
    return linear(q * torch.stack(outs, 1), module.out_proj)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("d_state", [8, 16, 64])
def test_matches_recurrent_reference(causal, d_state):
    torch.manual_seed(0)
    assert_matches_reference(create("h3", 8, causal=causal, d_state=d_state), reference, 8, SHAPES)


def test_causal_and_step():
    torch.manual_seed(0)
    module = create("h3", 8, causal=True, d_state=8)
    assert_causal_fft(module, 8)
    assert_step_matches_forward(module, 8, length=12)


def test_impulse_at_the_end_does_not_wrap():
    torch.manual_seed(0)
    module = create("h3", 8, causal=True).double()
    x = torch.randn(1, 10, 8, dtype=torch.float64)
    x2 = x.clone()
    x2[:, -1] += 100.0
    with torch.no_grad():
        assert (module(x2) - module(x))[:, :-1].abs().max() < 1e-10
