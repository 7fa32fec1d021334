"""Mamba-1's selective scan through the compiled C kernel (csrc/selective_scan.c), for CPU tensors.

The PyTorch form (ssm_selective_scan) has to write every (B, L, N, Di) intermediate to memory; the
kernel walks each channel's recurrence with its state in registers, and like the reference CUDA
kernel it fuses Mamba's skip and gate: out = (y + D u) silu(z). Training saves the inputs and the
state every SPAN positions; the backward recomputes each span from its start, as the PyTorch form
does per chunk.
"""
from __future__ import annotations

import ctypes

import torch
from torch.autograd.function import once_differentiable

from einsearch.ops.kernels import loader as cpu_kernels
from einsearch.ops.recurrent.selective_scan import MIN_LOG_DECAY

SPAN = 32  # positions between saved states: memory 1/SPAN of the state history; speed flat in 16..128
# (the kernel applies MIN_LOG_DECAY, Mamba's floor)


def _sizes(u: torch.Tensor, A: torch.Tensor) -> list:
    batch, length, d = u.shape
    return [*(ctypes.c_int64(v) for v in (batch, length, d, A.shape[1], SPAN)), ctypes.c_double(MIN_LOG_DECAY),
            ctypes.c_int(torch.get_num_threads())]


def forward(lib: ctypes.CDLL, u, dt, A, B, C, D, z, h, save: bool):
    """out (B, L, Di), the final state (B, Di, N) and, with save, the saved states (B, spans, Di, N)."""
    batch, length, d = u.shape
    out, last = torch.empty_like(u), torch.empty_like(h)
    starts = u.new_empty(batch, -(-length // SPAN), d, A.shape[1]) if save else None
    tensors = (u, dt, A, B, C, D, z, h, out, last, starts)
    cpu_kernels.check(lib.scan_forward(*map(cpu_kernels.pointer, tensors), *_sizes(u, A)), "selective_scan")
    return out, last, starts


def backward(lib: ctypes.CDLL, u, dt, A, B, C, D, z, starts, g_out, g_last):
    """Gradients of (u, dt, A, B, C, D, z, h0) (None for an absent D or z). Those of A, B, C and D
    are sums over channels or batch, so each thread fills its own zeroed copy; they are added here."""
    threads = torch.get_num_threads()
    g_u, g_dt, g_h0 = torch.empty_like(u), torch.empty_like(dt), torch.empty_like(g_last)
    g_a = A.new_zeros(threads, *A.shape)
    g_b, g_c = B.new_zeros(2, threads, *B.shape)
    g_d = None if D is None else D.new_zeros(threads, *D.shape)
    g_z = None if z is None else torch.empty_like(z)
    tensors = (u, dt, A, B, C, D, z, starts, g_out, g_last, g_u, g_dt, g_a, g_b, g_c, g_d, g_z, g_h0)
    cpu_kernels.check(lib.scan_backward(*map(cpu_kernels.pointer, tensors), *_sizes(u, A)), "selective_scan")
    return g_u, g_dt, g_a.sum(0), g_b.sum(0), g_c.sum(0), None if D is None else g_d.sum(0), g_z, g_h0


def _contiguous(*tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    return [None if t is None else t.contiguous() for t in tensors]


class CpuSelectiveScan(torch.autograd.Function):
    """The kernel's forward, with its recomputing backward."""

    @staticmethod
    def forward(ctx, lib, u, dt, A, B, C, D, z, h):
        inputs = _contiguous(u, dt, A, B, C, D, z, h)
        out, last, starts = forward(lib, *inputs, save=True)
        ctx.save_for_backward(*inputs[:7], starts)
        ctx.lib = lib
        return out, last

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_last):
        grads = backward(ctx.lib, *ctx.saved_tensors, g_out.contiguous(), g_last.contiguous())
        return None, *(g if need else None for g, need in zip(grads, ctx.needs_input_grad[1:]))


def selective_scan_cpu(u, dt, A, B, C, h, chunk: int, D=None, z=None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """ssm_mamba.selective_scan by the kernel (`chunk` plays no part), or None where the kernel
    does not apply."""
    lib = cpu_kernels.for_tensors("selective_scan", u, dt, A, B, C, D, z, h)
    if lib is None:
        return None
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (u, dt, A, B, C, D, z, h)):
        return CpuSelectiveScan.apply(lib, u, dt, A, B, C, D, z, h)
    return forward(lib, *_contiguous(u, dt, A, B, C, D, z, h), save=False)[:2]
