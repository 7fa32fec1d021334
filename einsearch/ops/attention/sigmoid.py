"""Sigmoid attention (Ramapuram et al. 2024): sigmoid(QK^T / sqrt(d) - log L) V, no row normalisation."""
from __future__ import annotations

import math

import torch
from torch import nn

from einsearch.ops.attention.common import attention_flops, check_heads, mask_future, rope
from einsearch.ops.common import RMSNorm, merge_heads, split_heads
from einsearch.ops.registry import register


@register(
    "sigmoid_attention", category="attention", cost="L^2",
    hparams={"heads": (1, 2, 4, 8), "qk_norm": (True, False), "rope": (True, False)},
    # What a decoder keeps is a KV cache like softmax attention's (given L up front, for the bias); 0 would
    # make it look stateless to a search that minimises decoding state.
    state_size=lambda dim, seq_len, hp: 2 * seq_len * dim,
    seq_flops=attention_flops, validate=lambda dim, hp: check_heads(dim, hp["heads"], hp["rope"]),
)
class SigmoidAttention(nn.Module):
    """Each query-key weight is sigmoid(q.k / sqrt(d) + b) with b = -log L, L the input length (as
    in the paper); causal mode zeroes the future weights. qk_norm: RMSNorm of q and k per head.

    No decoding step form: the bias depends on the full length L, unknown while decoding.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, qk_norm: bool = True, rope: bool = True):
        super().__init__()
        self.causal, self.heads, self.rope = causal, heads, rope
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.q_norm = RMSNorm(dim // heads) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(dim // heads) if qk_norm else nn.Identity()
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        v = split_heads(self.v(x), self.heads)  # (B, H, L, d)
        return self.out(merge_heads(self.attention_weights(x) @ v))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The weights forward applies to the values: (B, L, D) -> (B, H, L, L); rows are not normalised."""
        length = x.shape[1]
        q = self.q_norm(split_heads(self.q(x), self.heads))  # (B, H, L, d)
        k = self.k_norm(split_heads(self.k(x), self.heads))
        if self.rope:
            q, k = rope(q), rope(k)
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) - math.log(length)  # (B, H, L, L)
        return mask_future(torch.sigmoid(logits), self.causal, fill=0.0)
