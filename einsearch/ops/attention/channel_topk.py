"""DRSformer's top-k sparse attention across channels (Chen et al. 2023), in 1-D; non-causal only."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.attention.common import check_heads
from einsearch.ops.attention.topk import topk_softmax
from einsearch.ops.common import ShortConv
from einsearch.ops.registry import register

# DRSformer keeps these shares of each row's channels, in parallel branches
KEEP_SHARES = (1 / 2, 2 / 3, 3 / 4, 4 / 5)


def _validate(dim: int, hp: dict) -> str | None:
    problem = check_heads(dim, hp["heads"])
    if problem is None and dim // hp["heads"] < 2:
        return f"dim/heads={dim // hp['heads']} channels per head, need at least 2 for top-k"
    return problem


@register(
    "channel_topk_attention", category="attention", cost="L", causal=False,
    hparams={"heads": (1, 2, 4, 8)},    seq_flops=lambda dim, seq_len, hp: 4 * dim * (dim // hp["heads"]), validate=_validate,
)
class ChannelTopKAttention(nn.Module):
    """Per head, a (C x C) attention between channels over the whole sequence: q, k L2-normalised along
    positions, logits q k^T times a learned per-head temperature; four branches keep each row's top
    1/2, 2/3, 3/4, 4/5 of channels, softmax, times v, mixed by learned weights (init 0.2).
    q, k, v come from a linear map and a centred depthwise conv of width 3.

    Every output position depends on every input position: non-causal only, no decoding form.
    """

    def __init__(self, dim: int, causal: bool = False, heads: int = 4):
        super().__init__()
        if causal:
            raise ValueError("channel_topk_attention has no causal form")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.qkv_conv = ShortConv(3 * dim, 3, causal=False, bias=False)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.branch_weights = nn.Parameter(torch.full((len(KEEP_SHARES),), 0.2))
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        b, n, d = x.shape
        qkv = self.qkv_conv(self.qkv(x))  # (B, L, 3D)
        # (B, L, D) -> (B, H, C, L): channels are the "tokens" of this attention
        q, k, v = (t.reshape(b, n, self.heads, -1).permute(0, 2, 3, 1) for t in qkv.chunk(3, -1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        logits = q @ k.transpose(-1, -2) * self.temperature  # (B, H, C, C)
        channels = logits.shape[-1]
        y = sum(w * topk_softmax(logits, int(channels * share))
                for w, share in zip(self.branch_weights, KEEP_SHARES)) @ v  # (B, H, C, L)
        return self.out(y.permute(0, 3, 1, 2).reshape(b, n, d))
