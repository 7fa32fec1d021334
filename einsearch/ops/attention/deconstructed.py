"""Deconstructed attention (Xue, Moosavi & Aletras, "Deconstructing Attention: Investigating Design
Principles for Effective Language Modeling", 2025): controlled variants of softmax attention that
each relax one of its principles, so the grammar can use them alone or interleaved with standard
attention (where the paper finds even weak variants strong).

- `fixed_mix_attention`: no sequence dependence: one learned mixing matrix per head over positions
  (L_max x L_max, softmax over the allowed positions), the same for every input.
- `position_attention`: mixing weights a learned function of the relative position i - j only
  (log-bucketed, T5-style), so it works at any length.
- `l2_attention`: a different mathematical form: scores -||q_i - k_j||^2 / sqrt(d), then softmax.
- `embed_qk_attention`: queries and keys decoupled from the current hidden state: computed from the
  network's input embedding (the stem output, read from the cross-layer context); values from the
  current hidden state.

Causal forms mask keys j > i before the softmax (each row normalised over j <= i). All four share
the value and output projections of standard attention, and expose `attention_weights(x)`
(B, H, L, L), so an attention-aware MoE router can read their mixing matrices too.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.attention.common import QKV, attention_flops, check_heads, masked_softmax, rope
from einsearch.ops.common import RMSNorm, merge_heads, split_heads
from einsearch.ops.context import ContextConsumer
from einsearch.ops.registry import register

HEADS = (1, 2, 4, 8)
MAX_DISTANCE = 128  # position_attention: distances from here on share the last bucket


def _mixing_flops(dim: int, seq_len: int, hp: dict) -> int:
    """Per-token FLOPs of weights @ values over seq_len positions (no QK^T term)."""
    return 2 * seq_len * dim


def _heads_only(dim: int, hp: dict) -> str | None:
    return check_heads(dim, hp["heads"])


def _heads_rope(dim: int, hp: dict) -> str | None:
    return check_heads(dim, hp["heads"], hp["rope"])


class _InputIndependentMix(nn.Module):
    """Shared body of the variants whose weights do not depend on the input: y = out(W v(x))."""

    def __init__(self, dim: int, causal: bool, heads: int):
        super().__init__()
        self.causal, self.heads = causal, heads
        self.v = nn.Linear(dim, dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def mixing(self, length: int) -> torch.Tensor:  # (H, L, L), rows sum to 1
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        v = split_heads(self.v(x), self.heads)  # (B, H, L, d)
        return self.out(merge_heads(self.mixing(x.shape[1]) @ v))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The mixing matrix, broadcast over the batch: (B, L, D) -> (B, H, L, L)."""
        weights = self.mixing(x.shape[1])
        return weights.expand(x.shape[0], *weights.shape)


@register(
    "fixed_mix_attention", category="attention", cost="L^2",
    hparams={"heads": HEADS}, needs_seq_len=True,
    state_size=lambda dim, seq_len, hp: seq_len * dim,  # past values
    seq_flops=_mixing_flops, validate=_heads_only,
)
class FixedMixAttention(_InputIndependentMix):
    """Input-independent learned mixing: y = out(softmax(M_h) v(x)) with M_h an L_max x L_max matrix.

    Causal: row i normalised over j <= i (so M = 0, the initial value, is the causal running mean of
    the values). Non-causal: over all j < L. Inputs shorter than seq_len use the leading L x L block
    of M (for the causal form the same as running the prefix); longer inputs are an error.
    """

    def __init__(self, dim: int, causal: bool = True, seq_len: int = 64, heads: int = 1):
        if seq_len < 1:
            raise ValueError(f"fixed_mix_attention: seq_len must be >= 1, got {seq_len}")
        super().__init__(dim, causal, heads)
        self.seq_len = seq_len
        self.logits = nn.Parameter(torch.zeros(heads, seq_len, seq_len))  # (H, T, T)

    def mixing(self, length: int) -> torch.Tensor:
        if length > self.seq_len:
            raise ValueError(f"fixed_mix_attention built for seq_len {self.seq_len} got a sequence of "
                             f"length {length}")
        return masked_softmax(self.logits[:, :length, :length], self.causal)


def relative_buckets(length: int, buckets: int, causal: bool, device=None) -> torch.Tensor:
    """Bucket index (L, L) of each distance r = i - j: exact below buckets/2, then log-spaced up to
    MAX_DISTANCE, clamped. Non-causal: keys after the query (r < 0) use buckets..2*buckets-1."""
    pos = torch.arange(length, device=device)
    rel = pos[:, None] - pos[None, :]
    dist = rel.abs()
    exact = buckets // 2
    far = exact + (torch.log(dist.clamp(min=1).double() / exact) / math.log(MAX_DISTANCE / exact)
                   * (buckets - exact)).floor().long()
    index = torch.where(dist < exact, dist, far.clamp(max=buckets - 1))
    if not causal:
        index = index + buckets * (rel < 0)
    return index


@register(
    "position_attention", category="attention", cost="L^2",
    hparams={"heads": HEADS, "buckets": (16, 32)},    state_size=lambda dim, seq_len, hp: seq_len * dim,  # past values
    seq_flops=_mixing_flops, validate=_heads_only,
)
class PositionAttention(_InputIndependentMix):
    """Position-only mixing: y = out(softmax_j(b_h[bucket(i - j)]) v(x)), a learned bias per head and
    relative-distance bucket (see `relative_buckets`), so it applies to any length.

    Causal: softmax over j <= i. The biases start as ALiBi-like recency slopes: head h decays with
    slope 2^(-8(h+1)/H) per position of the bucket's first distance.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, buckets: int = 32):
        super().__init__(dim, causal, heads)
        self.buckets = buckets
        exact = buckets // 2
        index = torch.arange(buckets, dtype=torch.float64)
        start = torch.where(index < exact, index,
                            exact * (MAX_DISTANCE / exact) ** ((index - exact) / (buckets - exact)))
        slopes = 2.0 ** (-8.0 * torch.arange(1, heads + 1, dtype=torch.float64) / heads)
        bias = -slopes[:, None] * start[None, :]  # (H, buckets)
        if not causal:
            bias = torch.cat([bias, bias], dim=1)  # (H, 2 * buckets): keys before, keys after
        self.bias = nn.Parameter(bias.to(torch.get_default_dtype()))

    def mixing(self, length: int) -> torch.Tensor:
        index = relative_buckets(length, self.buckets, self.causal, self.bias.device)  # (L, L)
        return masked_softmax(self.bias[:, index], self.causal)  # (H, L, L)


@register(
    "l2_attention", category="attention", cost="L^2",
    hparams={"heads": HEADS, "rope": (True, False)},    state_size=lambda dim, seq_len, hp: 2 * seq_len * dim,  # KV cache
    seq_flops=attention_flops, validate=_heads_rope,
)
class L2Attention(nn.Module):
    """Negative squared L2 distance instead of the dot product: softmax_j(-||q_i - k_j||^2 / sqrt(d)) v.

    Computed with SDPA: -||q - k||^2 = 2 q.k - ||k||^2 - ||q||^2 and the last term is constant along
    each softmax row, so q' = [2q, -1], k' = [k, ||k||^2] give the same weights. Causal: j <= i.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, rope: bool = True):
        super().__init__()
        self.causal = causal
        self.qkv = QKV(dim, heads, heads, rope)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        q, k, v = self.qkv(x)  # (B, H, L, d)
        d = q.shape[-1]
        q_aug = torch.cat([2 * q, -torch.ones_like(q[..., :1])], dim=-1)  # (B, H, L, d+1)
        k_aug = torch.cat([k, k.pow(2).sum(-1, keepdim=True)], dim=-1)
        y = F.scaled_dot_product_attention(q_aug, k_aug, v, is_causal=self.causal, scale=1 / math.sqrt(d))
        return self.out(merge_heads(y))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, H, L, L): the softmax of -||q_i - k_j||^2 / sqrt(d), rows sum to 1."""
        q, k, _ = self.qkv(x)
        sq_dist = q.pow(2).sum(-1)[..., :, None] + k.pow(2).sum(-1)[..., None, :] - 2 * q @ k.transpose(-1, -2)
        return masked_softmax(-sq_dist / math.sqrt(q.shape[-1]), self.causal)


@register(
    "embed_qk_attention", category="attention", cost="L^2",
    hparams={"heads": HEADS, "rope": (True, False)},    state_size=lambda dim, seq_len, hp: 2 * seq_len * dim,  # KV cache
    seq_flops=attention_flops, validate=_heads_rope, needs_context=("embedding",),
)
class EmbedQKAttention(ContextConsumer):
    """Queries and keys from the input embedding e (the stem output), values from the hidden state x:
    y = out(softmax(q(n(e)) k(n(e))^T / sqrt(d)) v(x)), n an RMSNorm (the stem's scale is the task's).

    Causal: keys j <= i (e and x are both read at positions <= i only). Fallback: without a context
    embedding (a primitive run on its own, or blocks called one by one) e = x, which is standard
    softmax attention with an RMSNorm before the query and key projections.
    """

    context_needs = ("embedding",)

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, rope: bool = True):
        super().__init__()
        self.causal, self.heads, self.rope = causal, heads, rope
        self.norm = RMSNorm(dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The context's embedding (B, L, D), or x itself when there is none."""
        e = self.context.embedding if self.context is not None else None
        if e is None:
            return x
        if e.shape != x.shape:
            raise ValueError(f"embed_qk_attention: embedding shape {tuple(e.shape)} differs from the "
                             f"input's {tuple(x.shape)}")
        return e

    def queries_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.norm(self.embedding(x))
        q, k = split_heads(self.q(e), self.heads), split_heads(self.k(e), self.heads)  # (B, H, L, d)
        if self.rope:
            q, k = rope(q), rope(k)
        return q, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        q, k = self.queries_keys(x)
        v = split_heads(self.v(x), self.heads)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.out(merge_heads(y))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, H, L, L), rows sum to 1 (uses the context embedding like forward)."""
        q, k = self.queries_keys(x)
        return masked_softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), self.causal)
