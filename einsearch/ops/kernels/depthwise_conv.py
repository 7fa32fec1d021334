"""The depthwise convolution over positions (optionally followed by SiLU) through the compiled C
kernel (csrc/depthwise_conv.c), for CPU tensors: one pass over memory each way, where the PyTorch
form (conv_common.depthwise_valid) makes one per tap and its backward a full-size gradient per tap.
"""
from __future__ import annotations

import ctypes

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from einsearch.ops.kernels import loader as cpu_kernels


def _call(fn, tensors, x, out_len: int, k: int, pad: int, silu: bool) -> None:
    batch, length, channels = x.shape
    sizes = (ctypes.c_int64(v) for v in (batch, length, out_len, channels, k, pad))
    status = fn(*map(cpu_kernels.pointer, tensors), *sizes, ctypes.c_int(int(silu)),
                ctypes.c_int(torch.get_num_threads()))
    cpu_kernels.check(status, "depthwise_conv")


class CpuDepthwiseConv(torch.autograd.Function):
    """x (B, Lx, C), the Conv1d weight (C, 1, k) and bias (C,) or None -> (B, out_len, C)."""

    @staticmethod
    def forward(ctx, lib, x, weight, bias, pad: int, out_len: int, silu: bool):
        x = x.contiguous()
        taps = weight.squeeze(1).t().contiguous()  # (k, C)
        bias = None if bias is None else bias.contiguous()
        out = x.new_empty(x.shape[0], out_len, x.shape[2])
        _call(lib.conv_forward, (x, taps, bias, out), x, out_len, taps.shape[0], pad, silu)
        ctx.save_for_backward(x, taps, bias)
        ctx.lib, ctx.pad, ctx.silu = lib, pad, silu
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out):
        x, taps, bias = ctx.saved_tensors
        threads = torch.get_num_threads()
        g_x = torch.empty_like(x)
        g_taps = taps.new_zeros(threads, *taps.shape)
        g_bias = None if bias is None else bias.new_zeros(threads, *bias.shape)
        _call(ctx.lib.conv_backward, (x, taps, bias, g_out.contiguous(), g_x, g_taps, g_bias), x,
              g_out.shape[1], taps.shape[0], ctx.pad, ctx.silu)
        g_weight = g_taps.sum(0).t().unsqueeze(1)  # (C, 1, k)
        return None, g_x, g_weight, None if bias is None else g_bias.sum(0), None, None, None


def _run(conv: nn.Conv1d, x: torch.Tensor, pad: int, out_len: int, silu: bool) -> torch.Tensor | None:
    """(SiLU of) the depthwise `conv` over positions of x (B, Lx, C), x zero-padded by `pad` on the
    left (and as needed on the right): (B, out_len, C). None where the kernel does not apply: not
    on a CPU, mixed dtypes, under a tracer, torch.export or torch.compile, or no kernel built."""
    lib = cpu_kernels.for_tensors("depthwise_conv", x, conv.weight, conv.bias)
    if lib is None:
        return None
    return CpuDepthwiseConv.apply(lib, x, conv.weight, conv.bias, pad, out_len, silu)


def depthwise_conv_cpu(conv: nn.Conv1d, x: torch.Tensor, causal: bool, silu: bool = False) -> torch.Tensor | None:
    """conv_common.depthwise_conv by the kernel (None where it does not apply)."""
    k = conv.kernel_size[0]
    return _run(conv, x, k - 1 if causal else (k - 1) // 2, x.shape[1], silu)


def depthwise_valid_cpu(conv: nn.Conv1d, padded: torch.Tensor, silu: bool = False) -> torch.Tensor | None:
    """conv_common.depthwise_valid by the kernel (None where it does not apply)."""
    return _run(conv, padded, 0, padded.shape[1] - conv.kernel_size[0] + 1, silu)
