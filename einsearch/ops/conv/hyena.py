"""Hyena operator of order 2 (Poli et al., 2023) with an implicit long filter applied by FFT."""
from __future__ import annotations

import torch
from torch import nn

from einsearch.ops.conv.common import (
    ImplicitFilter, depthwise_conv, depthwise_step, fft_causal_conv, fft_conv_flops, long_conv_step,
)
from einsearch.ops.registry import register

SHORT_KERNEL = 3


@register(
    "hyena", category="convolution", cost="L log L", exact_causal=False,
    hparams={"filter_width": (32, 64)},    # decoding keeps the short-conv window and every past input of the long convolution
    state_size=lambda dim, seq_len, hp: 3 * dim * (SHORT_KERNEL - 1) + dim * seq_len,
    seq_flops=lambda dim, seq_len, hp: fft_conv_flops(dim, seq_len),
)
class Hyena(nn.Module):
    """Hyena, order 2: (x1, x2, v) = shortconv3(W u); z = x1 * v; y = W_o(x2 * (h * z + bias * z)).

    As in Hyena's code, the bias (Hyena's `D` skip of its fftconv) multiplies the convolved input
    z = x1 * v. h is the implicit filter (sin-FFN of positional features, width `filter_width`,
    two inner layers, exponential decay per channel), computed for the actual L at run time from
    L-independent parameters, and applied by FFT with zero padding to 2L. Hyena is a causal
    operator; with causal=False it runs the same causal form. Step form: the short conv window plus
    every past z (a growing buffer).
    """

    def __init__(self, dim: int, causal: bool = True, filter_width: int = 64):
        super().__init__()
        self.causal = causal
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.short_conv = nn.Conv1d(3 * dim, 3 * dim, SHORT_KERNEL, groups=3 * dim)
        self.filter = ImplicitFilter(dim, width=filter_width, emb_dim=5, layers=3)
        self.bias = nn.Parameter(torch.randn(dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        x1, x2, v = depthwise_conv(self.short_conv, self.in_proj(u), causal=True).chunk(3, dim=-1)
        z = x1 * v  # (B, L, D)
        h = self.filter(u.shape[1])  # (D, L)
        conv = fft_causal_conv(z.transpose(1, 2), h).transpose(1, 2)  # (B, L, D)
        return self.out_proj(x2 * (conv + self.bias * z))

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(short-conv window (B, 3D, 2), past z (B, D, 0))."""
        w = self.out_proj.weight
        device, dtype = device or w.device, dtype or w.dtype
        dim = w.shape[0]
        return (torch.zeros(batch, 3 * dim, SHORT_KERNEL - 1, device=device, dtype=dtype),
                torch.zeros(batch, dim, 0, device=device, dtype=dtype))

    def step(self, u_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """u_t (B, D) -> y_t (B, D), new state."""
        window, history = state
        xs, window = depthwise_step(self.short_conv, self.in_proj(u_t), window)
        x1, x2, v = xs.chunk(3, dim=-1)
        z = x1 * v  # (B, D)
        conv, history = long_conv_step(self.filter(history.shape[-1] + 1), z, history)
        return self.out_proj(x2 * (conv + self.bias * z)), (window, history)
