"""Sliding-window softmax attention: each query sees the keys less than `window` positions away."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.common import merge_heads
from einsearch.ops.attention.common import (QKV, append_cache, check_heads, explicit_attention_weights,
                                            kv_state_with_position, local_attention)
from einsearch.ops.registry import register


def _seq_flops(dim: int, seq_len: int, hp: dict) -> int:
    return 4 * min(seq_len, hp["window"]) * dim


@register(
    "sliding_window", category="attention", cost="L*w",
    hparams={"heads": (1, 2, 4, 8), "window": (16, 32, 64, 128), "rope": (True, False)},
    state_size=lambda dim, seq_len, hp: 2 * min(seq_len, hp["window"]) * dim,
    seq_flops=_seq_flops, validate=lambda dim, hp: check_heads(dim, hp["heads"], hp["rope"]),
)
class SlidingWindowAttention(nn.Module):
    """Local attention: causal keys j in (i - window, i]; non-causal |i - j| < window.

    Computed in blocks of `window` positions (each block against itself and its neighbours), so the
    cost is O(L * window). Decoding state: a KV cache bounded to the last `window` positions, and
    the position counter (for rotary).
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, window: int = 64, rope: bool = True):
        super().__init__()
        self.causal, self.window = causal, window
        self.qkv = QKV(dim, heads, heads, rope)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        q, k, v = self.qkv(x)  # (B, H, L, d)
        w = self.window
        if x.shape[1] <= w:  # every key is inside the window
            y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        elif self.causal:
            y = local_attention(q, k, v, w, True, lambda i, j: (j <= i) & (i - j < w))
        else:
            y = local_attention(q, k, v, w, False, lambda i, j: (i - j).abs() < w)
        return self.out(merge_heads(y))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention matrix forward uses, made explicit: (B, L, D) -> (B, heads, L, L), rows sum to 1.

        Allowed keys: (i - window, i] when causal, |i - j| < window otherwise. For analysis; forward
        never builds it (O(L^2) memory).
        """
        q, k, _ = self.qkv(x)  # (B, H, L, d)
        length = x.shape[1]
        i = torch.arange(length, device=x.device)[:, None]
        j = torch.arange(length, device=x.device)[None, :]
        allowed = ((j <= i) & (i - j < self.window)) if self.causal else (i - j).abs() < self.window
        return explicit_attention_weights(q, k, allowed)

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, ...]:
        return kv_state_with_position(batch, self.qkv.heads, self.qkv.head_dim, self.out.weight, device, dtype)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """x_t (B, D) -> y_t (B, D); state (keys, values of the last < window positions, position)."""
        k_cache, v_cache, pos = state
        q, k, v = self.qkv(x_t[:, None], start=int(pos))
        k_cache = append_cache(k_cache, k, keep=self.window)
        v_cache = append_cache(v_cache, v, keep=self.window)
        y = F.scaled_dot_product_attention(q, k_cache, v_cache)
        return self.out(merge_heads(y))[:, 0], (k_cache, v_cache, pos + 1)
