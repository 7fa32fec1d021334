"""Small building blocks shared by several primitives (not primitives themselves)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.conv.common import depthwise_conv


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last axis, with a learned gain."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(kind: str, dim: int) -> nn.Module:
    """'rms' or 'ln': per-token norms only (BatchNorm would couple the examples of a batch)."""
    if kind == "rms":
        return RMSNorm(dim)
    if kind == "ln":
        return nn.LayerNorm(dim)
    raise ValueError(f"unknown norm {kind!r}")


def rotary_tables(seq_len: int, dim: int, base: float = 10000.0, device=None, dtype=None):
    """cos, sin tables (L, dim/2) for rotary position embedding of `dim` (even) channels."""
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, device=device, dtype=torch.float64) / dim))
    angles = torch.arange(seq_len, device=device, dtype=torch.float64)[:, None] * inv[None, :]
    dtype = dtype or torch.get_default_dtype()
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (x[..., :d/2], x[..., d/2:]) of x (..., L, d) by position angles."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class ShortConv(nn.Module):
    """Depthwise 1-D convolution over positions (B, L, D) -> (B, L, D), then SiLU if `silu`.

    Causal: left-padded by k-1, so output t sees inputs t-k+1..t. Non-causal: centred.
    """

    def __init__(self, dim: int, kernel: int, causal: bool, bias: bool = True, silu: bool = False):
        super().__init__()
        self.kernel, self.causal, self.silu = kernel, causal, silu
        self.conv = nn.Conv1d(dim, dim, kernel, groups=dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise_conv(self.conv, x, self.causal, self.silu)

    def step(self, x_t: torch.Tensor, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One causal step: x_t (B, D); window (B, D, k) holds the last k inputs (oldest first)."""
        window = torch.cat([window[..., 1:], x_t.unsqueeze(-1)], dim=-1)
        y = (window * self.conv.weight.squeeze(1)).sum(-1)
        if self.conv.bias is not None:
            y = y + self.conv.bias
        return (F.silu(y) if self.silu else y), window


class HasAuxLoss(nn.Module):
    """Base for primitives that keep the last forward's auxiliary loss in `self.aux_loss`
    (the registry's one convention, summed by `einsearch.ops.aux_loss`).

    That tensor belongs to the last forward's graph; copies and pickles drop it (set None), since
    deepcopy refuses non-leaf tensors and a copy has run no forward.
    """

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "aux_loss": None}


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, L, H*d) -> (B, H, L, d)."""
    b, n, _ = x.shape
    return x.view(b, n, heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, L, d) -> (B, L, H*d)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)
