import math

import pytest
import torch
import torch.nn.functional as F

from einsearch.ops import create
from einsearch.ops.recurrent.mamba import MIN_LOG_DECAY, selective_scan
from einsearch.ops.recurrent.selective_scan import SelectiveScan, scan_forward
from tests.ops.recurrent.test_checks import assert_causal, assert_step_matches_forward, causal_conv, linear, rel_err
from tests.ops.recurrent.test_ssm_checks import assert_matches_loop

# odd lengths, lengths below, at and above a chunk (8), and non-multiples of it
SHAPES = [(2, 1), (1, 5), (2, 8), (1, 29)]


@pytest.fixture
def torch_path(monkeypatch):
    monkeypatch.setenv("EINSEARCH_CPU_KERNELS", "0")


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
def test_matches_step_by_step_recurrence(hp, backend):
    torch.manual_seed(0)
    assert_matches_loop(create("mamba", 32, causal=True, **hp), reference, 32, SHAPES)


def test_noncausal_runs_the_causal_form(backend):
    torch.manual_seed(0)
    assert_matches_loop(create("mamba", 32, causal=False, d_state=4, expand=1, chunk=8), reference, 32, [(1, 13)])


def test_causal(backend):
    torch.manual_seed(0)
    assert_causal(create("mamba", 32, causal=True, d_state=4, expand=1, chunk=8), 32)


@pytest.mark.parametrize("chunk", [4, 8])
def test_step_matches_forward(chunk, backend):
    torch.manual_seed(0)
    assert_step_matches_forward(create("mamba", 32, causal=True, d_state=4, expand=1, chunk=chunk), 32)


def test_scan_carries_a_given_state(backend):
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


def test_float32_stays_finite_with_strong_decay(backend):
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


def test_floor_is_active_and_shared_by_step(backend):
    """With dt A below the floor the scan and the decoding step apply the same floor."""
    torch.manual_seed(0)
    module = create("mamba", 32, causal=True, d_state=4, expand=1, chunk=8).double()
    with torch.no_grad():
        module.dt_proj.bias.fill_(20.0)
    assert_step_matches_forward(module, 32)


def test_chunk_beyond_the_float32_bound_is_refused():
    with pytest.raises(ValueError, match="chunk"):
        create("mamba", 32, causal=True, chunk=16)


def scan_inputs(b: int, length: int, di: int, n: int, seed: int = 0, dtype=torch.float64) -> list[torch.Tensor]:
    """u, dt, A, B, C, h0 for the scan, with dt A kept at least 1 away from the floor (-8): the
    floor is active for some entries (dt = 3 with A in {-3, -4}: dt A in {-9, -12}) and inactive
    for the others (|dt A| <= 6), so finite differences never cross the kink."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(b, length, di, generator=gen, dtype=dtype)
    dt = 0.1 + 1.4 * torch.rand(b, length, di, generator=gen, dtype=dtype)
    dt = torch.where(torch.rand(b, length, di, generator=gen, dtype=dtype) < 0.3, torch.full_like(dt, 3.0), dt)
    A = -torch.randint(1, 5, (di, n), generator=gen).to(dtype)
    B, C = (torch.randn(b, length, n, generator=gen, dtype=dtype) for _ in range(2))
    h0 = torch.randn(b, di, n, generator=gen, dtype=dtype)
    la = dt.unsqueeze(-1) * A
    assert (la < MIN_LOG_DECAY - 0.9).any() and (la > MIN_LOG_DECAY + 0.9).any()
    assert ((la - MIN_LOG_DECAY).abs() > 0.9).all()
    return [u, dt, A, B, C, h0]


def loop_scan(u, dt, A, B, C, h):
    """S6 position by position, the floor as torch.clamp: (y (B, L, Di), final state (B, Di, N))."""
    ys = []
    for t in range(u.shape[1]):
        decay = torch.exp((dt[:, t, :, None] * A).clamp(min=MIN_LOG_DECAY))
        h = decay * h + (dt[:, t] * u[:, t])[:, :, None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1))
    return torch.stack(ys, 1), h


def outputs_and_grads(fn, inputs: list[torch.Tensor], g_out: torch.Tensor, g_last: torch.Tensor) -> tuple:
    """(output, final state, gradient of every input) of fn(*inputs) -> (output, state), from the
    loss <output, g_out> + <state, g_last>, on fresh leaves."""
    leaves = [t.clone().requires_grad_() for t in inputs]
    out, last = fn(*leaves)
    return out, last, *torch.autograd.grad((out * g_out).sum() + (last * g_last).sum(), leaves)


@pytest.mark.parametrize("length,chunk", [(11, 4), (5, 8), (9, 1)])
def test_scan_function_gradcheck(length, chunk):
    """The Function's hand-written backward (recomputing chunk by chunk from the saved chunk-start
    states) against finite differences: odd L, a partial last chunk, nonzero h0, floor active."""
    inputs = [t.requires_grad_() for t in scan_inputs(2, length, 3, 2)]
    assert torch.autograd.gradcheck(lambda *a: SelectiveScan.apply(*a, chunk, MIN_LOG_DECAY), inputs)


@pytest.mark.parametrize("chunk", [4, 8])
def test_scan_function_gradients_match_loop(chunk):
    """Outputs and all six gradients (u, dt, A, B, C, h0; from both outputs) equal autograd through
    the plain loop, in float64; A's gradient is zero where the floor holds at every position."""
    inputs = scan_inputs(2, 29, 5, 4, seed=1)
    A = inputs[2]
    A[0, 0] = -100.0  # dt A <= -10 at every position: the floor always holds for (d, n) = (0, 0)
    gen = torch.Generator().manual_seed(2)
    gy = torch.randn(2, 29, 5, generator=gen, dtype=torch.float64)
    gh = torch.randn(2, 5, 4, generator=gen, dtype=torch.float64)
    results = [outputs_and_grads(fn, inputs, gy, gh)
               for fn in (lambda *a: SelectiveScan.apply(*a, chunk, MIN_LOG_DECAY), loop_scan)]
    for got, want in zip(*results):
        assert rel_err(got, want) < 1e-12
    assert results[0][4][0, 0] == 0.0


def test_scan_function_with_some_inputs_constant():
    """Inputs that do not require grad get none; the others match the loop."""
    u, dt, A, B, C, h0 = scan_inputs(1, 7, 3, 2, seed=3)
    u.requires_grad_()
    C.requires_grad_()
    y, h = SelectiveScan.apply(u, dt, A, B, C, h0, 4, MIN_LOG_DECAY)
    gu, gC = torch.autograd.grad(y.sum() + h.sum(), [u, C])
    y_ref, h_ref = loop_scan(u, dt, A, B, C, h0)
    gu_ref, gC_ref = torch.autograd.grad(y_ref.sum() + h_ref.sum(), [u, C])
    assert rel_err(gu, gu_ref) < 1e-12 and rel_err(gC, gC_ref) < 1e-12


def test_scan_function_saves_only_inputs_and_chunk_starts(torch_path):
    """Memory: the Function keeps its inputs and one state per chunk, not the state history."""
    b, length, di, n, chunk = 2, 29, 5, 4, 8
    inputs = [t.requires_grad_() for t in scan_inputs(b, length, di, n)]
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        selective_scan(*inputs, chunk)
    expected = sum(t.numel() for t in inputs[:5]) + math.ceil(length / chunk) * b * di * n
    assert sum(saved) == expected


def test_forward_paths_agree(torch_path):
    """The three forwards: the Function (training), the in-place one without gradients (inference)
    and the plain-ops one that autograd traces (torch.export with gradients) give the same y and
    state, and autograd through the plain ops gives the Function's gradients."""
    inputs = scan_inputs(2, 13, 3, 4, seed=4)
    with torch.no_grad():
        y_inf, h_inf = selective_scan(*inputs, 4)
    leaves = [[t.clone().requires_grad_() for t in inputs] for _ in range(2)]
    y_fn, h_fn = selective_scan(*leaves[0], 4)
    y_pl, h_pl = scan_forward(*leaves[1], 4, MIN_LOG_DECAY)[:2]
    assert type(y_fn.grad_fn).__name__ == "SelectiveScanBackward" and y_pl.grad_fn is not None
    for y, h in ((y_fn, h_fn), (y_pl, h_pl)):
        assert rel_err(y, y_inf) < 1e-14 and rel_err(h, h_inf) < 1e-14
    g_fn, g_pl = (torch.autograd.grad(y.sum() + h.sum(), ls) for y, h, ls in ((y_fn, h_fn, leaves[0]),
                                                                              (y_pl, h_pl, leaves[1])))
    for a, b in zip(g_fn, g_pl):
        assert rel_err(a, b) < 1e-12


def test_torch_export_with_gradients_enabled(backend):
    """torch.export outside no_grad (neither the Function's host sync nor the kernel's ctypes call
    can be traced) takes the plain-ops path; the graph agrees with the module (on either backend)."""
    torch.manual_seed(0)
    module = create("mamba", 32, causal=True, d_state=4, expand=1, chunk=8)
    x = torch.randn(2, 13, 32)
    graph = torch.export.export(module, (x,)).module()
    other = torch.randn(2, 13, 32)
    assert (graph(other) - module(other)).abs().max().item() <= 1e-6
