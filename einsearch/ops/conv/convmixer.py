"""ConvMixer's token mixing (Trockman & Kolter, 2022) in 1-D."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.conv.common import depthwise_conv, depthwise_step
from einsearch.ops.registry import register


@register(
    "convmixer", category="convolution", cost="L",
    hparams={"kernel": (3, 5, 9)},    state_size=lambda dim, seq_len, hp: dim * (hp["kernel"] - 1),
)
class ConvMixer(nn.Module):
    """h = x + norm(GELU(DWConv_k(x))); y = pointwise(h).

    Follows ConvMixer's layer: depthwise conv, GELU, norm, with its inner residual, then the
    pointwise (1x1) convolution as a linear map. Causal mode left-pads by k-1; non-causal centres.
    The norm is a per-token LayerNorm, not ConvMixer's BatchNorm: BatchNorm's batch statistics mix
    the examples of a batch (and, over positions, leak the future into the past in training mode).
    ConvMixer's GELU+BatchNorm after the pointwise conv are left out: the block around a token
    mixer supplies its own norm and channel MLP, and the mixer's output goes to a residual stream.
    Decoding state: the previous kernel-1 inputs.
    """

    def __init__(self, dim: int, causal: bool = True, kernel: int = 9):
        super().__init__()
        self.causal = causal
        self.dwconv = nn.Conv1d(dim, dim, kernel, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pointwise = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        h = x + self.norm(F.gelu(depthwise_conv(self.dwconv, x, self.causal)))
        return self.pointwise(h)

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor]:
        w = self.dwconv.weight
        return (torch.zeros(batch, w.shape[0], w.shape[-1] - 1, device=device or w.device, dtype=dtype or w.dtype),)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        """x_t (B, D) -> y_t (B, D); causal mode only."""
        conv_t, window = depthwise_step(self.dwconv, x_t, state[0])
        y = self.pointwise(x_t + self.norm(F.gelu(conv_t)))
        return y, (window,)
