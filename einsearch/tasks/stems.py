"""Stems for non-token inputs: images cut into patch tokens (a convolution whose stride is its kernel) and
real-valued vector tokens (a linear map), each with learned positions; and a scalar regression head."""
from __future__ import annotations

import torch
from torch import nn


class PatchStem(nn.Module):
    """Images (B, C, H, W) -> patch tokens (B, (H/p)*(W/p), D)."""

    def __init__(self, channels: int, height: int, width: int, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)
        self.pos = nn.Parameter(torch.zeros(1, (height // patch) * (width // patch), dim))
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.proj(images)  # (B, D, H/p, W/p)
        return x.flatten(2).transpose(1, 2) + self.pos  # (B, L, D)


class VectorStem(nn.Module):
    """Real-valued tokens (B, L, F) -> (B, L, D): a linear map of each token + learned positions."""

    def __init__(self, features: int, seq_len: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(features, dim)
        self.pos = nn.Parameter(torch.zeros(1, seq_len, dim))
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(tokens) + self.pos[:, :tokens.shape[1]]  # (B, L, D)


class ScalarHead(nn.Module):
    """(B, L, D) -> one real number per position (B, L): regression targets."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(x)).squeeze(-1)
