"""MambaOut's Gated CNN block (Yu & Wang, 2024): Mamba's block with the SSM taken out."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.conv.common import depthwise_conv, depthwise_step
from einsearch.ops.registry import register


def _sizes(dim: int, expansion: int, conv_ratio: float) -> tuple[int, int]:
    """(hidden width E, channels that get the convolution) for a model width `dim`."""
    return expansion * dim, int(conv_ratio * dim)


def _validate(dim: int, hp: dict) -> str | None:
    hidden, conv = _sizes(dim, hp["expansion"], hp["conv_ratio"])
    if conv < 1:
        return f"conv_ratio={hp['conv_ratio']} leaves no channel to convolve at dim {dim}"
    if conv > hidden:
        return f"conv_ratio={hp['conv_ratio']} asks for more conv channels than the hidden width {hidden}"
    return None


def _state_size(dim: int, seq_len: int, hp: dict) -> int:
    return _sizes(dim, hp["expansion"], hp["conv_ratio"])[1] * (hp["kernel"] - 1)


@register(
    "gated_cnn", category="convolution", cost="L",
    hparams={"kernel": (3, 4, 7), "expansion": (1, 2, 3), "conv_ratio": (0.25, 0.5, 1.0)},
    validate=_validate, state_size=_state_size,
    seq_flops=lambda dim, seq_len, hp: 3 * _sizes(dim, hp["expansion"], hp["conv_ratio"])[0],
)
class GatedCNN(nn.Module):
    """Gated CNN block of MambaOut (Yu & Wang, "MambaOut: Do We Really Need Mamba for Vision?", 2024).

    fc1: D -> 2E, split into a gate g (E) and a value (E) whose last C = conv_ratio * D channels
    go through a depthwise conv of width `kernel` (the rest pass unchanged, as in MambaOut's
    partial-channel conv); out = fc2(GELU(g) * [value_rest, conv(value_conv)]), E = expansion * D.
    MambaOut uses E = 8/3 D and kernel 7 (2-D); here E is a whole multiple of D so that choices
    print as integers. The block's norm and residual belong to the surrounding block.
    Causal form: the conv is left-padded (position t sees t-kernel+1..t); it has a step form whose
    state is the last kernel-1 conv inputs. Non-causal: the conv is centred.
    """

    def __init__(self, dim: int, causal: bool = True, kernel: int = 7, expansion: int = 2,
                 conv_ratio: float = 1.0):
        super().__init__()
        problem = _validate(dim, {"expansion": expansion, "conv_ratio": conv_ratio})
        if problem:
            raise ValueError(f"gated_cnn: {problem}")
        self.causal = causal
        self.hidden, self.conv_channels = _sizes(dim, expansion, conv_ratio)
        self.fc1 = nn.Linear(dim, 2 * self.hidden)
        self.conv = nn.Conv1d(self.conv_channels, self.conv_channels, kernel, groups=self.conv_channels)
        self.fc2 = nn.Linear(self.hidden, dim)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(..., D) -> gate (..., E), unconvolved value (..., E - C), conv input (..., C)."""
        rest = self.hidden - self.conv_channels
        return self.fc1(x).split([self.hidden, rest, self.conv_channels], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        g, rest, c = self._split(x)
        c = depthwise_conv(self.conv, c, self.causal)  # (B, L, C)
        return self.fc2(F.gelu(g) * torch.cat([rest, c], dim=-1))

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor]:
        """(the last kernel-1 conv inputs (B, C, kernel-1), zeros)."""
        w = self.conv.weight
        return (torch.zeros(batch, self.conv_channels, w.shape[-1] - 1,
                            device=device or w.device, dtype=dtype or w.dtype),)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        """One causal step: x_t (B, D) -> y_t (B, D), new state."""
        g, rest, c = self._split(x_t)
        c, window = depthwise_step(self.conv, c, state[0])
        return self.fc2(F.gelu(g) * torch.cat([rest, c], dim=-1)), (window,)
