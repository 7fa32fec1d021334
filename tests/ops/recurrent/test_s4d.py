import math

import pytest
import torch
import torch.nn.functional as F

from einsearch.ops import create
from tests.ops.checks import perturbed_outputs
from tests.ops.conv.test_checks import (
    assert_causal_fft, assert_matches_reference, assert_step_matches_forward, linear, ref_causal_conv, rel_err,
)

SHAPES = [(2, 1), (2, 6), (1, 11)]


def modes(kernel):
    """Discrete dt*A and C' = C (exp(dt A) - 1) / A (D, M) from a DiagSSMKernel's parameters (ZOH)."""
    a = torch.complex(-torch.exp(kernel.log_neg_a_real), kernel.a_imag)
    dt_a = torch.exp(kernel.log_dt)[:, None] * a
    return dt_a, torch.complex(kernel.c[..., 0], kernel.c[..., 1]) * (torch.exp(dt_a) - 1) / a


def materialised_kernel(kernel, length):
    """K (D, length), lag by lag: K_l = 2 Re(sum_m C'_m exp(dt A_m)^l)."""
    dt_a, c = modes(kernel)
    power = torch.ones_like(dt_a)
    columns = []
    for _ in range(length):
        columns.append(2 * (c * power).sum(-1).real)
        power = power * torch.exp(dt_a)
    return torch.stack(columns, 1)


def head(module, y):
    """GELU, Linear(D, 2D), GLU, written out."""
    out = linear(F.gelu(y), module.out_proj)
    half = out.shape[-1] // 2
    return out[..., :half] * torch.sigmoid(out[..., half:])


def recurrent_reference(module, x):
    """Causal S4D as the complex diagonal recurrence s_t = exp(dt A) s_{t-1} + u_t, token by token."""
    dt_a, c = modes(module.kernel)
    state = torch.zeros(x.shape[0], *dt_a.shape, dtype=torch.complex128)
    outs = []
    for t in range(x.shape[1]):
        state = torch.exp(dt_a) * state + x[:, t, :, None]
        outs.append(2 * (c * state).sum(-1).real + module.skip * x[:, t])
    return head(module, torch.stack(outs, 1))


def bidirectional_reference(module, x):
    """y_t = sum_{s<=t} Kf_{t-s} x_s + sum_{s>t} Kb_{s-t-1} x_s + D x_t, by direct summation."""
    length = x.shape[1]
    kf = materialised_kernel(module.kernel, length)
    kb = materialised_kernel(module.backward_kernel, length)
    rows = []
    for t in range(length):
        acc = module.skip * x[:, t]
        for s in range(length):
            acc = acc + (kf[:, t - s] if s <= t else kb[:, s - t - 1]) * x[:, s]
        rows.append(acc)
    return head(module, torch.stack(rows, 1))


@pytest.mark.parametrize("d_state", [16, 64])
def test_causal_matches_recurrence(d_state):
    torch.manual_seed(0)
    assert_matches_reference(create("s4d", 8, causal=True, d_state=d_state), recurrent_reference, 8, SHAPES)


@pytest.mark.parametrize("d_state", [16, 32])
def test_bidirectional_matches_direct_convolution(d_state):
    torch.manual_seed(0)
    assert_matches_reference(create("s4d", 8, causal=False, d_state=d_state), bidirectional_reference, 8, SHAPES)


def test_fft_conv_equals_direct_causal_conv_with_the_materialised_kernel():
    torch.manual_seed(0)
    module = create("s4d", 8, causal=True, d_state=16).double()
    length = 40
    kernel = module.kernel(length)
    assert rel_err(kernel, materialised_kernel(module.kernel, length)) < 1e-10
    x = torch.randn(2, length, 8, dtype=torch.float64)
    conv = ref_causal_conv(x, kernel) + module.skip * x
    with torch.no_grad():
        assert rel_err(module(x), head(module, conv)) < 1e-10


def test_causal_and_step():
    torch.manual_seed(0)
    module = create("s4d", 8, causal=True, d_state=16)
    assert_causal_fft(module, 8)
    assert_step_matches_forward(module, 8, length=13)


def test_bidirectional_sees_the_future_and_has_no_step():
    torch.manual_seed(0)
    module = create("s4d", 8, causal=False, d_state=16).double()
    y, y2 = perturbed_outputs(module, 8, length=11, t=6)
    assert (y[:, :6] - y2[:, :6]).abs().max() > 1e-6
    with pytest.raises(ValueError, match="causal"):
        module.step(torch.zeros(1, 8, dtype=torch.float64), module.init_state(1, dtype=torch.float64))


def test_impulse_at_the_end_does_not_wrap():
    torch.manual_seed(0)
    module = create("s4d", 8, causal=True, d_state=16).double()
    with torch.no_grad():  # slow decay (small dt), so a circular wrap would be large
        module.kernel.log_dt.fill_(math.log(1e-3))
    x = torch.randn(1, 10, 8, dtype=torch.float64)
    x2 = x.clone()
    x2[:, -1] += 100.0
    with torch.no_grad():
        assert (module(x2) - module(x))[:, :-1].abs().max() < 1e-10
