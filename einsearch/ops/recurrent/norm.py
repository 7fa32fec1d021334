"""Per-head output norms of the recurrent primitives (GLA, DeltaNet, HGRN2 style)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class HeadRMSNorm(nn.Module):
    """RMS norm of each head's output (B, H, L, d) with a gain shared by the heads; optionally
    times swish(gate) as in GLA / Gated DeltaNet's output gate. Returns (B, L, H*d)."""

    def __init__(self, head_dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(head_dim))

    def forward(self, o: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        o = o.transpose(1, 2).flatten(2)  # (B, L, H*d)
        return o if gate is None else o * F.silu(gate)
