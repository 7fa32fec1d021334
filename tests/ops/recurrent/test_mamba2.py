import pytest
import torch
import torch.nn.functional as F

from einsearch.ops import create
from tests.ops.recurrent.test_checks import assert_causal, assert_step_matches_forward, causal_conv, linear, rel_err
from tests.ops.recurrent.test_ssm_checks import assert_matches_loop

# odd lengths, lengths below, at and above a chunk (16), and a non-multiple of it
SHAPES = [(2, 1), (1, 7), (2, 16), (1, 37)]


def rms_norm(x, weight, eps):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def reference(module, x):
    """Mamba-2 as a plain recurrence, token by token, from the module's parameters.
    Returns (y (B, L, D), final SSM state h (B, H, N, headdim))."""
    b, length, _ = x.shape
    di, n, heads, p = module.d_inner, module.d_state, module.heads, module.headdim
    proj = linear(x, module.in_proj)
    z, xbc, dt = proj[..., :di], proj[..., di:2 * di + 2 * n], proj[..., 2 * di + 2 * n:]
    xbc = F.silu(causal_conv(xbc, module.conv))
    xs, B, C = xbc[..., :di], xbc[..., di:di + n], xbc[..., di + n:]
    dt = F.softplus(dt + module.dt_bias)  # (B, L, H)
    a = -torch.exp(module.A_log)  # (H,)
    h = torch.zeros(b, heads, n, p, dtype=x.dtype)
    ys = []
    for t in range(length):
        x_t = xs[:, t].reshape(b, heads, p)
        decay = torch.exp(dt[:, t] * a)  # (B, H)
        h = decay[:, :, None, None] * h + dt[:, t, :, None, None] * B[:, t, None, :, None] * x_t[:, :, None, :]
        y_t = torch.einsum("bn,bhnp->bhp", C[:, t], h) + module.D[:, None] * x_t
        ys.append(y_t.reshape(b, di))
    y = torch.stack(ys, 1) * F.silu(z)
    y = rms_norm(y, module.norm.weight, module.norm.eps)
    return linear(y, module.out_proj), h


@pytest.mark.parametrize("hp", [
    dict(headdim=16, d_state=16, chunk=16),
    dict(headdim=32, d_state=32, chunk=16),
    dict(headdim=64, d_state=16, chunk=32),
])
def test_matches_step_by_step_recurrence(hp):
    torch.manual_seed(0)
    assert_matches_loop(create("mamba2", 32, causal=True, **hp), reference, 32, SHAPES)


def test_noncausal_runs_the_causal_form():
    torch.manual_seed(0)
    assert_matches_loop(create("mamba2", 32, causal=False, headdim=16, d_state=16, chunk=16),
                        reference, 32, [(1, 19)])


def test_causal():
    torch.manual_seed(0)
    assert_causal(create("mamba2", 32, causal=True, headdim=16, d_state=16, chunk=16), 32)


@pytest.mark.parametrize("chunk", [16, 32])
def test_step_matches_forward(chunk):
    torch.manual_seed(0)
    assert_step_matches_forward(create("mamba2", 32, causal=True, headdim=16, d_state=16, chunk=chunk), 32)


def test_chunk_size_does_not_change_the_function():
    torch.manual_seed(0)
    small = create("mamba2", 32, causal=True, headdim=16, d_state=16, chunk=16).double()
    large = create("mamba2", 32, causal=True, headdim=16, d_state=16, chunk=64).double()
    large.load_state_dict(small.state_dict())
    x = torch.randn(2, 45, 32, dtype=torch.float64)
    assert rel_err(small(x), large(x)) < 1e-12


def test_float32_stays_finite_with_strong_decay():
    """Large dt and A make per-chunk decays tiny (e^-1000); every exponent in the chunked form is
    a difference of log decays <= 0, so nothing overflows."""
    torch.manual_seed(0)
    module = create("mamba2", 32, causal=True, headdim=16, d_state=16, chunk=64)
    with torch.no_grad():
        module.dt_bias.fill_(20.0)
        module.A_log.fill_(3.0)
    y = module(torch.randn(2, 130, 32))
    y.sum().backward()
    assert torch.isfinite(y).all()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())
