"""The compiled CPU kernel of Mamba-1's selective scan (with the fused skip and gate) against the
plain position-by-position loop, in float64: outputs and every gradient."""
import math

import pytest
import torch
import torch.nn.functional as F

from einsearch.ops import create
from einsearch.ops.kernels import loader as cpu_kernels
from einsearch.ops.recurrent.mamba import selective_scan
from einsearch.ops.kernels.selective_scan import SPAN, CpuSelectiveScan
from tests.ops.recurrent.test_checks import rel_err
from tests.ops.recurrent.test_mamba import loop_scan, outputs_and_grads, scan_inputs


@pytest.fixture
def lib():
    kernel = cpu_kernels.for_tensors("selective_scan", torch.zeros(1, dtype=torch.float64))
    assert kernel is not None  # the test machines have gcc
    return kernel


@pytest.fixture
def threads():
    """Sets torch's thread count (the kernel's) for one test."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def gated_inputs(b: int, length: int, di: int, n: int, seed: int, dtype=torch.float64) -> list[torch.Tensor]:
    """u, dt, A, B, C, D, z, h0 (floor active for some entries, see scan_inputs)."""
    u, dt, A, B, C, h0 = scan_inputs(b, length, di, n, seed=seed, dtype=dtype)
    gen = torch.Generator().manual_seed(seed + 100)
    D = torch.randn(di, generator=gen, dtype=dtype)
    z = 2 * torch.randn(b, length, di, generator=gen, dtype=dtype)
    return [u, dt, A, B, C, D, z, h0]


def loop_gated(u, dt, A, B, C, D, z, h):
    y, h = loop_scan(u, dt, A, B, C, h)
    if D is not None:
        y = y + D * u
    return (y if z is None else y * F.silu(z)), h


def kernel_scan(lib, u, dt, A, B, C, D, z, h):
    return CpuSelectiveScan.apply(lib, u, dt, A, B, C, D, z, h)


@pytest.mark.parametrize("fused", [True, False])
def test_gradcheck(lib, fused):
    """Finite differences: two spans (the second partial), 19 channels (a partial lane block),
    floor active, nonzero h0; with the skip and gate fused in and without."""
    inputs = gated_inputs(2, SPAN + 5, 19, 3, seed=0)
    if not fused:
        inputs[5] = inputs[6] = None
    leaves = [None if t is None else t.requires_grad_() for t in inputs]
    given = [t for t in leaves if t is not None]

    def fn(*args):
        it = iter(args)
        return kernel_scan(lib, *(None if t is None else next(it) for t in leaves))

    assert torch.autograd.gradcheck(fn, given)


@pytest.mark.parametrize("length,di,n,count", [(1, 3, 2, 1), (29, 5, 4, 2), (3 * SPAN + 7, 37, 16, 3)])
def test_matches_loop(lib, threads, length, di, n, count):
    """Outputs and all eight gradients equal autograd through the loop to 1e-12, for lengths below,
    at and past several spans, channel counts off the kernel's 64-channel blocks, 1-3 threads."""
    threads(count)
    inputs = gated_inputs(2, length, di, n, seed=length)
    gen = torch.Generator().manual_seed(1)
    g_out = torch.randn(2, length, di, generator=gen, dtype=torch.float64)
    g_last = torch.randn(2, di, n, generator=gen, dtype=torch.float64)
    results = [outputs_and_grads(fn, inputs, g_out, g_last) for fn in (lambda *a: kernel_scan(lib, *a), loop_gated)]
    for got, want in zip(*results):
        assert rel_err(got, want) < 1e-12


def test_float32_agrees_with_float64(lib):
    inputs = gated_inputs(2, 70, 20, 16, seed=5)
    want = loop_gated(*inputs)
    lib32 = cpu_kernels.for_tensors("selective_scan", torch.zeros(1))
    got = CpuSelectiveScan.apply(lib32, *(t.float() for t in inputs))
    for a, b in zip(got, want):
        assert a.dtype == torch.float32 and rel_err(a.double(), b) < 1e-5


def test_constant_inputs_get_no_gradient(lib):
    u, dt, A, B, C, D, z, h0 = gated_inputs(1, 9, 3, 2, seed=3)
    u.requires_grad_()
    z.requires_grad_()
    out, last = selective_scan(u, dt, A, B, C, h0, 8, D, z)
    assert type(out.grad_fn).__name__ == "CpuSelectiveScanBackward"
    gu, gz = torch.autograd.grad(out.sum() + last.sum(), [u, z])
    want = loop_gated(u, dt, A, B, C, D, z, h0)
    gu_ref, gz_ref = torch.autograd.grad(want[0].sum() + want[1].sum(), [u, z])
    assert rel_err(gu, gu_ref) < 1e-12 and rel_err(gz, gz_ref) < 1e-12


def test_saves_only_inputs_and_span_starts(lib):
    """Memory: the inputs and one state per SPAN positions, not the state history."""
    b, length, di, n = 2, 2 * SPAN + 3, 5, 4
    inputs = [t.requires_grad_() for t in gated_inputs(b, length, di, n, seed=6)]
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        kernel_scan(lib, *inputs)
    assert sum(saved) == sum(t.numel() for t in inputs[:7]) + math.ceil(length / SPAN) * b * di * n


def test_inference_path_equals_training_path(lib):
    inputs = gated_inputs(2, 40, 6, 4, seed=7)
    with torch.no_grad():
        out, last = selective_scan(*inputs[:5], inputs[7], 8, inputs[5], inputs[6])
    assert out.grad_fn is None
    leaves = [t.clone().requires_grad_() for t in inputs]
    out_g, last_g = selective_scan(*leaves[:5], leaves[7], 8, leaves[5], leaves[6])
    assert torch.equal(out, out_g.detach()) and torch.equal(last, last_g.detach())


def test_mixed_dtypes_take_the_pytorch_form(lib):
    """(torch.export, the other case, is tested in test_ssm_mamba.)"""
    u, dt, A, B, C, D, z, h0 = gated_inputs(1, 12, 4, 2, seed=8)
    assert cpu_kernels.for_tensors("selective_scan", u, dt, A, B, C, D, z, h0) is lib
    assert cpu_kernels.for_tensors("selective_scan", u, A.float()) is None
    out, last = selective_scan(u, dt, A.float(), B, C, h0, 4, D, z)
    want = loop_gated(u, dt, A, B, C, D, z, h0)
    assert rel_err(out, want[0]) < 1e-6 and rel_err(last, want[1]) < 1e-6


def test_module_trains_through_the_kernel(lib):
    torch.manual_seed(0)
    module = create("mamba", 32, causal=True, d_state=4, expand=2, chunk=8).double()
    seen = []
    handle = torch.autograd.graph.register_multi_grad_hook(
        [module.A_log], lambda grads: seen.append(grads[0] is not None))
    x = torch.randn(2, 40, 32, dtype=torch.float64)
    out = module(x)
    names = set()
    stack = [out.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is not None and type(fn).__name__ not in names:
            names.add(type(fn).__name__)
            stack.extend(f for f, _ in fn.next_functions)
    out.sum().backward()
    handle.remove()
    assert "CpuSelectiveScanBackward" in names and seen == [True]
