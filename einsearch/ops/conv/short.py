"""Short depthwise convolution over positions (the local mixer of Mamba, DeltaNet, Hyena)."""
from __future__ import annotations

import torch
from torch import nn

from einsearch.ops.common import ShortConv
from einsearch.ops.conv.common import depthwise_step
from einsearch.ops.registry import register


@register(
    "short_conv", category="convolution", cost="L",
    hparams={"kernel": (3, 4, 7)},    state_size=lambda dim, seq_len, hp: dim * (hp["kernel"] - 1),
)
class ShortConvMixer(nn.Module):
    """Depthwise 1-D convolution of width `kernel` (causal: left-padded; non-causal: centred).

    Decoding state: the previous kernel-1 inputs (B, D, kernel-1).
    """

    def __init__(self, dim: int, causal: bool = True, kernel: int = 4):
        super().__init__()
        self.causal = causal
        self.conv = ShortConv(dim, kernel, causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        return self.conv(x)

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor]:
        weight = self.conv.conv.weight
        return (torch.zeros(batch, weight.shape[0], self.conv.kernel - 1,
                            device=device or weight.device, dtype=dtype or weight.dtype),)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        """x_t (B, D) -> y_t (B, D); causal mode only."""
        y, window = depthwise_step(self.conv.conv, x_t, state[0])
        return y, (window,)
