"""Helpers shared by the Mamba primitives (not primitives themselves): the dt parametrisation and
the causal depthwise convolution that continues from a carried window of past inputs."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.conv.common import depthwise_conv, depthwise_valid


def dt_bias_init(size: int, dt_min: float = 1e-3, dt_max: float = 1e-1, floor: float = 1e-4) -> torch.Tensor:
    """Mamba's dt bias: softplus^-1 of dt drawn log-uniformly in [dt_min, dt_max], so that at init
    softplus(bias) = dt."""
    dt = torch.exp(torch.rand(size) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))  # inverse softplus: dt + log(1 - e^-dt)


def conv_with_window(conv: nn.Conv1d, x: torch.Tensor, window: torch.Tensor | None,
                     silu: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal depthwise conv of x (B, L, C) that continues after `window` (B, C, k-1), the previous
    k-1 inputs (oldest first; None = zeros, i.e. the start of a sequence); with silu, SiLU of it.

    Returns the output (B, L, C) and the new window (B, C, k-1): the last k-1 inputs seen.
    """
    k, length = conv.kernel_size[0], x.shape[1]
    if window is None:
        y = depthwise_conv(conv, x, causal=True, silu=silu)
        last = x[:, max(length - (k - 1), 0):]
        last = F.pad(last, (0, 0, k - 1 - last.shape[1], 0))  # zeros before the start
        return y, last.transpose(1, 2)
    full = torch.cat([window.transpose(1, 2), x], dim=1)  # (B, k-1+L, C)
    return depthwise_valid(conv, full, silu), full[:, full.shape[1] - (k - 1):].transpose(1, 2)
