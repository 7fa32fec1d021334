"""Softmax multi-head attention with grouped / multi-query KV heads and rotary positions."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.common import merge_heads
from einsearch.ops.attention.common import (QKV, append_cache, empty_kv_cache, attention_flops, check_heads, masked_softmax)
from einsearch.ops.registry import register


def _validate(dim: int, hp: dict) -> str | None:
    if hp["heads"] % hp["kv_heads"]:
        return f"kv_heads={hp['kv_heads']} does not divide heads={hp['heads']}"
    return check_heads(dim, hp["heads"], hp["rope"])


@register(
    "attention", category="attention", cost="L^2",
    hparams={"heads": (1, 2, 4, 8), "kv_heads": (1, 2, 4, 8), "rope": (True, False)},
    state_size=lambda dim, seq_len, hp: 2 * seq_len * hp["kv_heads"] * (dim // hp["heads"]),
    seq_flops=attention_flops, validate=_validate,
)
class Attention(nn.Module):
    """Softmax attention, kv_heads KV heads shared by groups of query heads (MHA, GQA, MQA).

    Decoding state: the KV cache (B, kv_heads, T, head_dim) x 2, growing by one position a step.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, kv_heads: int = 4, rope: bool = True):
        super().__init__()
        self.causal = causal
        self.qkv = QKV(dim, heads, kv_heads, rope)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        q, k, v = self.qkv(x)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal,
                                           enable_gqa=self.qkv.kv_heads != self.qkv.heads)
        return self.out(merge_heads(y))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention matrix forward uses, made explicit: (B, L, D) -> (B, heads, L, L), rows sum to 1.

        For analysis and attention-aware routing; forward never calls it (SDPA keeps it implicit).
        """
        q, k, _ = self.qkv(x)
        k = k.repeat_interleave(self.qkv.heads // self.qkv.kv_heads, dim=1)  # (B, H, L, d)
        return masked_softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, self.causal)  # (B, H, L, L)

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
        return empty_kv_cache(batch, self.qkv.kv_heads, self.qkv.head_dim, self.out.weight, device, dtype)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """x_t (B, D) -> y_t (B, D); the cache length is the position of x_t. Causal mode only."""
        k_cache, v_cache = state
        q, k, v = self.qkv(x_t[:, None], start=k_cache.shape[2])
        k_cache, v_cache = append_cache(k_cache, k), append_cache(v_cache, v)
        y = F.scaled_dot_product_attention(q, k_cache, v_cache,
                                           enable_gqa=self.qkv.kv_heads != self.qkv.heads)
        return self.out(merge_heads(y))[:, 0], (k_cache, v_cache)
