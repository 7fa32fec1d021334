"""Multi-head latent attention (DeepSeek-V2/V3): a low-rank KV latent shared by all heads plus a
decoupled rotary key shared across heads."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.attention.common import attention_flops, masked_softmax, rope
from einsearch.ops.common import RMSNorm, merge_heads, split_heads
from einsearch.ops.registry import register


def rope_dim(head_dim: int) -> int:
    """Width of the decoupled rotary part: half the head width (DeepSeek: 64 of 128), even, >= 2."""
    return 2 * max(1, head_dim // 4)


def _validate(dim: int, hp: dict) -> str | None:
    if dim % hp["heads"]:
        return f"heads={hp['heads']} does not divide dim={dim}"
    if dim % hp["latent_div"]:
        return f"latent_div={hp['latent_div']} does not divide dim={dim}"
    return None


def _state_size(dim: int, seq_len: int, hp: dict) -> int:
    return (dim // hp["latent_div"] + rope_dim(dim // hp["heads"])) * seq_len


@register(
    "mla", category="attention", cost="L^2",
    hparams={"heads": (1, 2, 4, 8), "latent_div": (2, 4, 8)},
    state_size=_state_size, seq_flops=attention_flops, validate=_validate,
)
class MultiHeadLatentAttention(nn.Module):
    """c = RMSNorm(W_dkv x) of width dim / latent_div; per head k^C = W_uk c, v = W_uv c; one rotary
    key k^R = RoPE(W_kr x) for all heads; queries [q^C; RoPE(q^R)] (not compressed, unlike
    DeepSeek's large models); score (q^C.k^C + q^R.k^R) / sqrt(d_h + d_R).

    `forward` expands keys and values per head; `forward_absorbed` folds W_uk into the queries and
    W_uv after the attention, attending over the latent itself. Decoding (absorbed) caches only
    [c; k^R] per position: (latent + rope dim) numbers.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, latent_div: int = 4):
        super().__init__()
        self.causal, self.heads = causal, heads
        self.head_dim, self.rope_dim, self.latent = dim // heads, rope_dim(dim // heads), dim // latent_div
        self.down_kv = nn.Linear(dim, self.latent, bias=False)
        self.kv_norm = RMSNorm(self.latent)
        self.up_k = nn.Linear(self.latent, dim, bias=False)  # W_uk: heads * head_dim rows
        self.up_v = nn.Linear(self.latent, dim, bias=False)  # W_uv
        self.key_rope = nn.Linear(dim, self.rope_dim, bias=False)  # W_kr, shared by the heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.q_rope = nn.Linear(dim, heads * self.rope_dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def _queries_and_latent(self, x: torch.Tensor, start: int = 0):
        """x (B, L, D) -> q^C (B, H, L, d_h), q^R (B, H, L, d_R), c (B, L, d_c), k^R (B, 1, L, d_R)."""
        q_c = split_heads(self.q(x), self.heads)
        q_r = rope(split_heads(self.q_rope(x), self.heads), start)
        latent = self.kv_norm(self.down_kv(x))
        k_r = rope(self.key_rope(x)[:, None], start)
        return q_c, q_r, latent, k_r

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D); expanded form
        q_c, q_r, latent, k_r = self._queries_and_latent(x)
        k_c, v = split_heads(self.up_k(latent), self.heads), split_heads(self.up_v(latent), self.heads)
        q = torch.cat([q_c, q_r], -1)  # (B, H, L, d_h + d_R)
        k = torch.cat([k_c, k_r.expand(-1, self.heads, -1, -1)], -1)
        # values zero-padded to the query width: torch's fused CPU kernel needs equal widths (~3x faster)
        v = F.pad(v, (0, self.rope_dim))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)[..., :self.head_dim]
        return self.out(merge_heads(y))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention matrix forward uses, made explicit: (B, L, D) -> (B, heads, L, L), rows sum to 1.

        Scores (q^C.k^C + q^R.k^R) / sqrt(d_h + d_R); for analysis, forward never builds it.
        """
        q_c, q_r, latent, k_r = self._queries_and_latent(x)
        k_c = split_heads(self.up_k(latent), self.heads)  # (B, H, L, d_h)
        scores = (q_c @ k_c.transpose(-1, -2) + q_r @ k_r.transpose(-1, -2)) / math.sqrt(
            self.head_dim + self.rope_dim)  # (B, H, L, L); k^R (B, 1, L, d_R) is shared by the heads
        return masked_softmax(scores, self.causal)

    def _absorbed(self, q_c: torch.Tensor, q_r: torch.Tensor, cache: torch.Tensor,
                  causal: bool) -> torch.Tensor:
        """Attention over the latent: cache (B, 1, T, d_c + d_R) = [c; k^R] -> (B, Lq, D)."""
        w_uk = self.up_k.weight.view(self.heads, self.head_dim, self.latent)  # (H, d_h, d_c)
        w_uv = self.up_v.weight.view(self.heads, self.head_dim, self.latent)
        q = torch.cat([q_c @ w_uk, q_r], -1)  # (B, H, Lq, d_c + d_R): q^C absorbs W_uk
        values = cache[..., :self.latent]  # (B, 1, T, d_c)
        y = F.scaled_dot_product_attention(q, cache, values, is_causal=causal, enable_gqa=True,
                                           scale=1 / math.sqrt(self.head_dim + self.rope_dim))
        return self.out(merge_heads(y @ w_uv.transpose(1, 2)))  # W_uv applied after attention

    def forward_absorbed(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        q_c, q_r, latent, k_r = self._queries_and_latent(x)
        return self._absorbed(q_c, q_r, torch.cat([latent[:, None], k_r], -1), self.causal)

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor]:
        weight = self.out.weight
        return (torch.zeros(batch, 1, 0, self.latent + self.rope_dim,
                            device=device or weight.device, dtype=dtype or weight.dtype),)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor]):
        """x_t (B, D) -> y_t (B, D) with the latent cache (B, 1, T, d_c + d_R); causal mode only."""
        cache = state[0]
        q_c, q_r, latent, k_r = self._queries_and_latent(x_t[:, None], start=cache.shape[2])
        cache = torch.cat([cache, torch.cat([latent[:, None], k_r], -1)], 2)
        return self._absorbed(q_c, q_r, cache, causal=False)[:, 0], (cache,)
