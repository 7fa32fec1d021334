"""Image stem: cut images into patch tokens (a convolution whose stride is its kernel) + learned positions."""
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
