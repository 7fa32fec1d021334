import pytest
import torch
import torch.nn.functional as F

from einsearch.ops import create
from einsearch.ops.ssm_mamba import MIN_LOG_DECAY, selective_scan
from tests.ops.test_rec_checks import assert_causal, assert_step_matches_forward, causal_conv, linear, rel_err
from tests.ops.test_ssm_checks import assert_matches_loop

# odd lengths, lengths below, at and above a chunk (8), and non-multiples of it
SHAPES = [(2, 1), (1, 5), (2, 8), (1, 29)]


def reference(module, x):
    """Mamba-1 as a plain recurrence, token by token, from the module's parameters.
    Returns (y (B, L, D), final SSM state h (B, Di, N))."""
    b, length, _ = x.shape
    di, n, rank = module.d_inner, module.d_state, module.dt_rank
    proj = linear(x, module.in_proj)
    xs, z = proj[..., :di], proj[..., di:]
    xs = F.silu(causal_conv(xs, module.conv))
    dbc = linear(xs, module.x_proj)
    dt = F.softplus(linear(dbc[..., :rank], module.dt_proj))  # (B, L, Di), bias inside dt_proj
    B, C = dbc[..., rank:rank + n], dbc[..., rank + n:]
    a = -torch.exp(module.A_log)  # (Di, N)
    h = torch.zeros(b, di, n, dtype=x.dtype)
    ys = []
    for t in range(length):
        h = torch.exp((dt[:, t, :, None] * a).clamp(min=MIN_LOG_DECAY)) * h + dt[:, t, :, None] * B[:, t, None, :] * xs[:, t, :, None]
        ys.append((h * C[:, t, None, :]).sum(-1) + module.D * xs[:, t])
    y = torch.stack(ys, 1) * F.silu(z)
    return linear(y, module.out_proj), h


@pytest.mark.parametrize("hp", [
    dict(d_state=4, expand=1, chunk=8),
    dict(d_state=16, expand=2, chunk=8),
    dict(d_state=8, expand=2, chunk=4),
])
def test_matches_step_by_step_recurrence(hp):
    torch.manual_seed(0)
    assert_matches_loop(create("mamba", 32, causal=True, **hp), reference, 32, SHAPES)


def test_noncausal_runs_the_causal_form():
    torch.manual_seed(0)
    assert_matches_loop(create("mamba", 32, causal=False, d_state=4, expand=1, chunk=8), reference, 32, [(1, 13)])


def test_causal():
    torch.manual_seed(0)
    assert_causal(create("mamba", 32, causal=True, d_state=4, expand=1, chunk=8), 32)


@pytest.mark.parametrize("chunk", [4, 8])
def test_step_matches_forward(chunk):
    torch.manual_seed(0)
    assert_step_matches_forward(create("mamba", 32, causal=True, d_state=4, expand=1, chunk=chunk), 32)


def test_scan_carries_a_given_state():
    """selective_scan from a nonzero state h0 equals the plain recurrence from h0."""
    gen = torch.Generator().manual_seed(0)
    b, length, di, n = 2, 11, 3, 4
    u = torch.randn(b, length, di, generator=gen, dtype=torch.float64)
    dt = torch.rand(b, length, di, generator=gen, dtype=torch.float64)
    a = -torch.rand(di, n, generator=gen, dtype=torch.float64) * 4
    B, C = (torch.randn(b, length, n, generator=gen, dtype=torch.float64) for _ in range(2))
    h0 = torch.randn(b, di, n, generator=gen, dtype=torch.float64)
    y, h = selective_scan(u, dt, a, B, C, h0, chunk=4)
    h_ref, ys = h0, []
    for t in range(length):
        h_ref = torch.exp(dt[:, t, :, None] * a) * h_ref + dt[:, t, :, None] * B[:, t, None, :] * u[:, t, :, None]
        ys.append((h_ref * C[:, t, None, :]).sum(-1))
    assert rel_err(y, torch.stack(ys, 1)) < 1e-12
    assert rel_err(h, h_ref) < 1e-12


def test_float32_stays_finite_with_strong_decay():
    """Large dt makes dt A as small as -300 per step: the floor MIN_LOG_DECAY bounds the chunk's
    factors by e^64, so float32 neither overflows nor produces NaN, and agrees with the float64
    step-by-step reference (which applies the same floor)."""
    torch.manual_seed(0)
    module = create("mamba", 32, causal=True, d_state=16, expand=1, chunk=8)
    with torch.no_grad():
        module.dt_proj.bias.fill_(20.0)
    x = torch.randn(2, 70, 32)
    y = module(x)
    y.sum().backward()
    assert torch.isfinite(y).all()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())
    y_ref, _ = reference(module.double(), x.double())
    assert rel_err(y.double(), y_ref) < 1e-4


def test_floor_is_active_and_shared_by_step():
    """With dt A below the floor the scan and the decoding step apply the same floor."""
    torch.manual_seed(0)
    module = create("mamba", 32, causal=True, d_state=4, expand=1, chunk=8).double()
    with torch.no_grad():
        module.dt_proj.bias.fill_(20.0)
    assert_step_matches_forward(module, 32)


def test_chunk_beyond_the_float32_bound_is_refused():
    with pytest.raises(ValueError, match="chunk"):
        create("mamba", 32, causal=True, chunk=16)
