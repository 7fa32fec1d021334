"""Top-k sparse attention over tokens: mask the future, keep each row's k largest logits, softmax."""
from __future__ import annotations

import math

import torch
from torch import nn

from einsearch.ops.common import merge_heads
from einsearch.ops.attention.common import (QKV, append_cache, empty_kv_cache, attention_flops, check_heads, mask_future)
from einsearch.ops.registry import register


def topk_softmax(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Softmax over the k largest finite entries of each row of logits (..., Lq, Lk); -inf = hidden."""
    k = min(k, logits.shape[-1])
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, logits.topk(k, dim=-1).indices, True)
    # rows with fewer than k visible keys pick some -inf entries; those stay hidden
    return logits.masked_fill(~keep, float("-inf")).softmax(-1)


@register(
    "topk_attention", category="attention", cost="L^2",
    hparams={"heads": (1, 2, 4, 8), "topk": (8, 16, 32, 64), "rope": (True, False)},
    state_size=lambda dim, seq_len, hp: 2 * seq_len * dim,
    seq_flops=attention_flops, validate=lambda dim, hp: check_heads(dim, hp["heads"], hp["rope"]),
)
class TopKAttention(nn.Module):
    """Softmax attention over each query's `topk` highest-scoring visible keys (the future is masked
    before the selection, so it never takes a slot). Dense logits: O(L^2) compute.

    Decoding state: the full KV cache (B, H, T, head_dim) x 2.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, topk: int = 32, rope: bool = True):
        super().__init__()
        self.causal, self.topk = causal, topk
        self.qkv = QKV(dim, heads, heads, rope)
        self.out = nn.Linear(dim, dim, bias=False)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, Lq, Lk)
        if causal:
            lq, lk = logits.shape[-2:]
            future = torch.ones(lq, lk, dtype=torch.bool, device=q.device).triu(1 + lk - lq)
            logits = logits.masked_fill(future, float("-inf"))
        return topk_softmax(logits, self.topk) @ v

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        q, k, v = self.qkv(x)
        return self.out(merge_heads(self._attend(q, k, v, self.causal)))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention matrix forward uses: (B, L, D) -> (B, heads, L, L), rows sum to 1, at most
        `topk` non-zero entries per row."""
        q, k, _ = self.qkv(x)
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, L, L)
        return topk_softmax(mask_future(logits, self.causal), self.topk)

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
        return empty_kv_cache(batch, self.qkv.heads, self.qkv.head_dim, self.out.weight, device, dtype)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """x_t (B, D) -> y_t (B, D); causal mode only."""
        k_cache, v_cache = state
        q, k, v = self.qkv(x_t[:, None], start=k_cache.shape[2])
        k_cache, v_cache = append_cache(k_cache, k), append_cache(v_cache, v)
        y = self._attend(q, k_cache, v_cache, causal=False)  # the cache holds the past only
        return self.out(merge_heads(y))[:, 0], (k_cache, v_cache)
