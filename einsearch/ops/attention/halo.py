"""HaloNet blocked local attention in 1-D: each block of queries attends its block plus a halo."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.common import merge_heads
from einsearch.ops.attention.common import (QKV, append_cache, check_heads, explicit_attention_weights,
                                            kv_state_with_position, local_attention)
from einsearch.ops.registry import register


@register(
    "halo_attention", category="attention", cost="L*w",
    hparams={"heads": (1, 2, 4, 8), "block": (8, 16, 32, 64), "rope": (True, False)},
    state_size=lambda dim, seq_len, hp: 2 * min(seq_len, 2 * hp["block"]) * dim,
    seq_flops=lambda dim, seq_len, hp: 4 * min(seq_len, 2 * hp["block"]) * dim,
    validate=lambda dim, hp: check_heads(dim, hp["heads"], hp["rope"]),
)
class HaloAttention(nn.Module):
    """Blocks of `block` queries; keys: the block and a halo of one block on each side (non-causal),
    or the previous block plus the block itself up to the query (causal).

    Keys outside the sequence (the zero padding at both ends) are masked out; a popular HaloNet
    implementation inverts this mask and blanks the valid keys instead. Decoding state: the KV cache
    of the previous block and the current block so far, and the position counter.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, block: int = 16, rope: bool = True):
        super().__init__()
        self.causal, self.block = causal, block
        self.qkv = QKV(dim, heads, heads, rope)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        q, k, v = self.qkv(x)  # (B, H, L, d)
        if self.causal:
            y = local_attention(q, k, v, self.block, True, lambda i, j: j <= i)
        else:
            y = local_attention(q, k, v, self.block, False, lambda i, j: torch.ones((), dtype=torch.bool))
        return self.out(merge_heads(y))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention matrix forward uses, made explicit: (B, L, D) -> (B, heads, L, L), rows sum to 1.

        Allowed keys: the query's block and the previous one, up to the query (causal), or the query's
        block and both neighbours (non-causal). For analysis; forward never builds it (O(L^2) memory).
        """
        q, k, _ = self.qkv(x)  # (B, H, L, d)
        length = x.shape[1]
        i = torch.arange(length, device=x.device)[:, None]
        j = torch.arange(length, device=x.device)[None, :]
        near = (j // self.block - i // self.block).abs() <= 1
        allowed = near & (j <= i) if self.causal else near
        return explicit_attention_weights(q, k, allowed)

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, ...]:
        return kv_state_with_position(batch, self.qkv.heads, self.qkv.head_dim, self.out.weight, device, dtype)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """x_t (B, D) -> y_t (B, D); causal mode only."""
        k_cache, v_cache, pos = state
        t = int(pos)
        q, k, v = self.qkv(x_t[:, None], start=t)
        keep = self.block + t % self.block + 1  # previous block + this block up to t
        k_cache, v_cache = append_cache(k_cache, k, keep), append_cache(v_cache, v, keep)
        y = F.scaled_dot_product_attention(q, k_cache, v_cache)
        return self.out(merge_heads(y))[:, 0], (k_cache, v_cache, pos + 1)
