"""The depthwise convolution over positions (optionally with SiLU), on the compiled CPU kernel and
on the PyTorch form, against torch's own conv1d: outputs and gradients in float64."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.kernels import loader as cpu_kernels
from einsearch.ops.conv.common import depthwise_conv
from einsearch.ops.kernels.depthwise_conv import CpuDepthwiseConv
from tests.ops.recurrent.test_checks import rel_err


def reference(conv: nn.Conv1d, x: torch.Tensor, causal: bool, silu: bool) -> torch.Tensor:
    """torch's conv1d (groups=C) on the transposed input, padded as depthwise_conv pads."""
    k = conv.kernel_size[0]
    pad = (k - 1, 0) if causal else ((k - 1) // 2, k // 2)
    y = F.conv1d(F.pad(x.transpose(1, 2), pad), conv.weight, conv.bias, groups=x.shape[2]).transpose(1, 2)
    return F.silu(y) if silu else y


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("k,length,channels,bias", [(4, 1, 3, True), (4, 13, 70, False), (3, 9, 5, True),
                                                    (1, 6, 4, True), (5, 2, 130, True)])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("silu", [False, True])
def test_matches_conv1d(backend, threads, k, length, channels, bias, causal, silu):
    """Kernels 1-5 (odd and even: centred padding is uneven), L below and above k, channel counts
    below, at and past the kernel's 64-lane blocks, 2 threads: output, grad x, grad w and grad b."""
    threads(2)
    torch.manual_seed(k * length)
    conv = nn.Conv1d(channels, channels, k, groups=channels, bias=bias).double()
    x = torch.randn(3, length, channels, dtype=torch.float64)
    g = torch.randn(3, length, channels, dtype=torch.float64)
    results = []
    for fn in (depthwise_conv, reference):
        x_leaf = x.clone().requires_grad_()
        y = fn(conv, x_leaf, causal, silu)
        params = [x_leaf, conv.weight] + ([conv.bias] if bias else [])
        results.append((y, *torch.autograd.grad((y * g).sum(), params)))
    for got, want in zip(*results):
        assert got.shape == want.shape and rel_err(got, want) < 1e-12


def test_uses_the_kernel_on_a_cpu(backend):
    conv = nn.Conv1d(4, 4, 3, groups=4).double()
    y = depthwise_conv(conv, torch.randn(1, 5, 4, dtype=torch.float64), causal=True)
    assert (type(y.grad_fn).__name__ == "CpuDepthwiseConvBackward") == (backend == "kernel")


@pytest.mark.parametrize("silu", [False, True])
def test_kernel_gradcheck(silu):
    lib = cpu_kernels.for_tensors("depthwise_conv", torch.zeros(1, dtype=torch.float64))
    torch.manual_seed(0)
    x = torch.randn(2, 7, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: CpuDepthwiseConv.apply(lib, *a, 2, 8, silu), (x, w, b))


def test_float32_kernel_agrees_with_float64():
    torch.manual_seed(1)
    conv = nn.Conv1d(96, 96, 4, groups=96)
    x = torch.randn(2, 50, 96)
    y = depthwise_conv(conv, x, causal=True, silu=True)
    assert y.dtype == torch.float32
    assert rel_err(y.double(), reference(conv.double(), x.double(), True, True)) < 1e-6
