"""Pieces shared by the attention primitives (not primitives themselves).

Layout convention: per-head tensors are (B, H, L, d) as torch's scaled_dot_product_attention wants.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.common import apply_rotary, rotary_tables, split_heads


def check_heads(dim: int, heads: int, rope: bool = False) -> str | None:
    """Error text when `heads` does not split `dim` (into even head widths when rotary), else None."""
    if dim % heads:
        return f"heads={heads} does not divide dim={dim}"
    if rope and (dim // heads) % 2:
        return f"rotary needs an even head width, got dim/heads={dim // heads}"
    return None


def attention_flops(dim: int, seq_len: int, hp: dict) -> int:
    """Per-token FLOPs of QK^T and AV over a context of seq_len keys (2 multiply-adds per pair)."""
    return 4 * seq_len * dim


def rope(x: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Rotary positions start.. applied to x (B, H, L, d)."""
    length = x.shape[-2]
    cos, sin = rotary_tables(start + length, x.shape[-1], device=x.device, dtype=x.dtype)
    return apply_rotary(x, cos[start:], sin[start:])


def mask_future(scores: torch.Tensor, causal: bool, fill: float = float("-inf")) -> torch.Tensor:
    """scores (..., L, L): entries of keys after their query (j > i) set to `fill` when causal."""
    if not causal:
        return scores
    length = scores.shape[-1]
    future = torch.ones(length, length, dtype=torch.bool, device=scores.device).triu(1)
    return scores.masked_fill(future, fill)


def masked_softmax(scores: torch.Tensor, causal: bool) -> torch.Tensor:
    """Row softmax of scores (..., L, L), future keys excluded when causal: the explicit attention matrix."""
    return mask_future(scores, causal).softmax(-1)


class QKV(nn.Module):
    """Query, key and value projections into heads (grouped KV heads allowed), optional rotary."""

    def __init__(self, dim: int, heads: int, kv_heads: int | None = None, rope: bool = True):
        super().__init__()
        kv_heads = kv_heads or heads
        self.heads, self.kv_heads, self.rope = heads, kv_heads, rope
        self.head_dim = dim // heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.v = nn.Linear(dim, kv_heads * self.head_dim, bias=False)

    def forward(self, x: torch.Tensor, start: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, L, D) at positions start.. -> q (B, H, L, d), k and v (B, Hkv, L, d)."""
        q, k = split_heads(self.q(x), self.heads), split_heads(self.k(x), self.kv_heads)
        v = split_heads(self.v(x), self.kv_heads)
        if self.rope:
            q, k = rope(q, start), rope(k, start)
        return q, k, v


def blocks(x: torch.Tensor, block: int) -> torch.Tensor:
    """(B, H, nb*block, d) -> (B, H, nb, block, d)."""
    b, h, n, d = x.shape
    return x.view(b, h, n // block, block, d)


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block: int, causal: bool,
                    allowed: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Blocked local softmax attention in O(L * block): query block n sees key blocks n-1, n (and n+1
    when not causal), further restricted by allowed(i, j) on absolute positions (broadcast bool).

    q, k, v: (B, H, L, d) -> (B, H, L, d). Padding keys (outside 0..L-1) are always masked out;
    `allowed` must leave every real query at least one key (its own position suffices).
    """
    length = q.shape[-2]
    pad = -length % block
    q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    nb = (length + pad) // block
    kb, vb = blocks(k, block), blocks(v, block)
    zeros = torch.zeros_like(kb[:, :, :1])
    # keys of block n: [block n-1, block n, (block n+1)] -> (B, H, nb, 2 or 3 blocks, d)
    ctx_k = [torch.cat([zeros, kb[:, :, :-1]], 2), kb]
    ctx_v = [torch.cat([zeros, vb[:, :, :-1]], 2), vb]
    if not causal:
        ctx_k.append(torch.cat([kb[:, :, 1:], zeros], 2))
        ctx_v.append(torch.cat([vb[:, :, 1:], zeros], 2))
    ctx_k, ctx_v = torch.cat(ctx_k, 3), torch.cat(ctx_v, 3)
    # absolute positions: queries (nb, block, 1), keys (nb, 1, width)
    start = torch.arange(nb, device=q.device)[:, None, None] * block
    i = start + torch.arange(block, device=q.device)[None, :, None]
    j = start - block + torch.arange(ctx_k.shape[3], device=q.device)[None, None, :]
    mask = (j >= 0) & (j < length) & allowed(i, j)
    out = F.scaled_dot_product_attention(blocks(q, block), ctx_k, ctx_v, attn_mask=mask)
    return out.reshape(q.shape)[:, :, :length]


def empty_kv_cache(batch: int, heads: int, head_dim: int, like: torch.Tensor, device=None,
                   dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values of no position yet, (B, heads, 0, head_dim) each; `like`'s device and dtype
    unless given. The decoding state attention primitives start from."""
    empty = torch.zeros(batch, heads, 0, head_dim, device=device or like.device, dtype=dtype or like.dtype)
    return empty, empty.clone()


def append_cache(cache: torch.Tensor, new: torch.Tensor, keep: int | None = None) -> torch.Tensor:
    """Append new (B, H, 1, d) to cache (B, H, T, d) along positions; keep only the last `keep`."""
    out = torch.cat([cache, new], dim=2)
    return out if keep is None else out[:, :, -keep:]


def kv_state_with_position(batch: int, heads: int, head_dim: int, like: torch.Tensor, device=None,
                           dtype=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An empty KV cache and a position counter at 0: the decoding state of attention with rotary
    positions whose cache is cut to a window (it cannot tell the position from the cache's length)."""
    keys, values = empty_kv_cache(batch, heads, head_dim, like, device, dtype)
    return keys, values, torch.zeros((), dtype=torch.long, device=device or like.device)


def explicit_attention_weights(q: torch.Tensor, k: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax attention weights over the allowed keys, built as a whole (B, H, L, L) matrix: q, k
    (B, H, L, d), allowed (L, L) bool. For analysis and tests; O(L^2) memory."""
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, H, L, L)
    return scores.masked_fill(~allowed, float("-inf")).softmax(-1)
