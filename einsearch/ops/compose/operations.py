"""einspace's fundamental operations: the modules `compose(...)` mixers are made of.

Each class maps one node kind inside `compose` (seq, branch, split, attend, permute, conv, act,
shift); `einsearch.grammar.checker` wires them and export writes them out as source. Every module
maps (B, L, W) -> (B, L, W'), W in units of the mixed axis.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Seq(nn.Module):
    def __init__(self, mods: list[nn.Module]):
        super().__init__()
        self.mods = nn.ModuleList(mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for mod in self.mods:
            x = mod(x)
        return x


def aggregate(agg: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if agg == "add":
        return a + b
    if agg == "mul":
        return a * b
    return torch.cat([a, b], dim=-1)


class Branch(nn.Module):
    """Clone the input into two branches, then aggregate (add, mul = gate, cat)."""

    def __init__(self, agg: str, left: nn.Module, right: nn.Module):
        super().__init__()
        self.agg, self.left, self.right = agg, left, right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return aggregate(self.agg, self.left(x), self.right(x))


class Split(nn.Module):
    """First half of the channels to one branch, second half to the other, then aggregate."""

    def __init__(self, agg: str, left: nn.Module, right: nn.Module):
        super().__init__()
        self.agg, self.left, self.right = agg, left, right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=-1)
        return aggregate(self.agg, self.left(a), self.right(b))


class Attend(nn.Module):
    """Dot-product interaction: score(q k^T / sqrt(d_k)) v, future masked when causal.

    score: softmax (row-normalised), sigmoid (bias -log L, no normalisation) or none (linear).
    """

    def __init__(self, score: str, q: nn.Module, k: nn.Module, v: nn.Module, causal: bool):
        super().__init__()
        self.score, self.causal = score, causal
        self.q, self.k, self.v = q, k, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q(x), self.k(x), self.v(x)  # (B, L, dk), (B, L, dk), (B, L, dv)
        length = x.shape[1]
        logits = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])  # (B, L, L)
        mask = torch.ones(length, length, dtype=torch.bool, device=x.device)
        if self.causal:
            mask = mask.tril()
        if self.score == "softmax":
            weights = logits.masked_fill(~mask, float("-inf")).softmax(-1)
        elif self.score == "sigmoid":
            weights = torch.sigmoid(logits - math.log(length)) * mask
        else:
            weights = logits * mask / length
        return weights @ v


class Permute(nn.Module):
    """Apply `mod` along the positions: (B, L, D) -> (B, D, L) -> mod -> back (non-causal)."""

    def __init__(self, mod: nn.Module):
        super().__init__()
        self.mod = mod

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mod(x.transpose(1, 2)).transpose(1, 2)


class DepthwiseConv(nn.Module):
    """Depthwise conv over positions; left-padded (causal) or centred."""

    def __init__(self, dim: int, kernel: int, causal: bool):
        super().__init__()
        self.kernel, self.causal = kernel, causal
        self.conv = nn.Conv1d(dim, dim, kernel, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel
        pad = (k - 1, 0) if self.causal else ((k - 1) // 2, k // 2)
        return self.conv(F.pad(x.transpose(1, 2), pad)).transpose(1, 2)


class Act(nn.Module):
    FUNCTIONS = {
        "gelu": F.gelu, "silu": F.silu, "relu": F.relu, "sigmoid": torch.sigmoid,
        "tanh": torch.tanh, "softmax": lambda x: x.softmax(-1),
    }

    def __init__(self, fn: str):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.FUNCTIONS[self.fn](x)


class Shift(nn.Module):
    """Token shift: y_t = x_(t-k), zeros for t < k."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, self.k, 0))[:, : x.shape[1]]
