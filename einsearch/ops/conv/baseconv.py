"""BaseConv (Arora et al., 2023, "Zoology"): a gated convolution, y = (W u + b) * (h * u) + u."""
from __future__ import annotations

import torch
from torch import nn

from einsearch.ops.conv.common import (
    ImplicitFilter, depthwise_conv, depthwise_step, fft_causal_conv, fft_conv_flops, long_conv_step,
)
from einsearch.ops.registry import register

SHORT_KERNEL = 3


def _state_size(dim: int, seq_len: int, hp: dict) -> int:
    # A long filter reaches back to position 0: decoding keeps every past input.
    return dim * (SHORT_KERNEL - 1) if hp["kernel"] == "short" else dim * seq_len


def _seq_flops(dim: int, seq_len: int, hp: dict) -> int:
    return 0 if hp["kernel"] == "short" else fft_conv_flops(dim, seq_len)


@register(
    "baseconv", category="convolution", cost="L log L", exact_causal=False,
    hparams={"kernel": ("short", "long")},    state_size=_state_size, seq_flops=_seq_flops,
)
class BaseConv(nn.Module):
    """Zoology's BaseConv: a linear projection gates a depthwise convolution, plus a skip.

    kernel="short": depthwise conv of width 3 (causal: left-padded; non-causal: centred), with a
    step form. kernel="long": implicit long filter (Hyena-style sin-FFN of positional features,
    one hidden layer of width 32, with exponential decay), applied by FFT with zero padding to 2L.
    The long form is causal in both modes (no bidirectional form is defined for it); its step form
    keeps every past input (a growing buffer, like a KV cache).
    """

    def __init__(self, dim: int, causal: bool = True, kernel: str = "long"):
        super().__init__()
        if kernel not in ("short", "long"):
            raise ValueError(f"baseconv: kernel must be 'short' or 'long', got {kernel!r}")
        self.causal, self.kernel = causal, kernel
        self.proj = nn.Linear(dim, dim)
        if kernel == "short":
            self.conv = nn.Conv1d(dim, dim, SHORT_KERNEL, groups=dim)
        else:
            self.filter = ImplicitFilter(dim, width=32, emb_dim=3, layers=1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        if self.kernel == "short":
            conv = depthwise_conv(self.conv, u, self.causal)
        else:
            h = self.filter(u.shape[1])  # (D, L)
            conv = fft_causal_conv(u.transpose(1, 2), h).transpose(1, 2)
        return self.proj(u) * conv + u

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor]:
        """Short kernel: the last 2 inputs (B, D, 2). Long kernel: all past inputs (B, D, t), empty at first."""
        w = self.proj.weight
        width = SHORT_KERNEL - 1 if self.kernel == "short" else 0
        return (torch.zeros(batch, w.shape[0], width, device=device or w.device, dtype=dtype or w.dtype),)

    def step(self, u_t: torch.Tensor, state: tuple[torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        """u_t (B, D) -> y_t (B, D); causal mode only."""
        if self.kernel == "short":
            conv_t, window = depthwise_step(self.conv, u_t, state[0])
        else:
            h = self.filter(state[0].shape[-1] + 1)  # (D, t+1)
            conv_t, window = long_conv_step(h, u_t, state[0])
        return self.proj(u_t) * conv_t + u_t, (window,)
