"""Mixture of sparse attention (MoA, Fu et al. 2024, "MoA: Mixture of Sparse Attention for Automatic
Large Language Model Compression", arXiv:2406.14909): sliding-window heads whose spans differ per head
and grow with the sequence length, span_h = alpha_h + beta_h * L.

MoA's profiler picks (alpha_h, beta_h) per head from a search space; here the grammar picks a named
profile (a rule head index -> (alpha, beta)), so the architecture search plays the profiler's role.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.common import merge_heads
from einsearch.ops.attention.common import QKV, check_heads, local_attention
from einsearch.ops.registry import register

# profile -> human description; the rule itself is `head_rules`.
PROFILES = ("uniform", "elastic", "graded", "local_global")


def head_rules(profile: str, heads: int, window: int) -> list[tuple[int, int, int]]:
    """(alpha_h, num_h, den_h) per head, beta_h = num_h / den_h: span_h(L) = alpha_h + floor(beta_h * L).

    uniform:      every head (window, 0): one fixed window (MoA's uniform sliding-window baseline).
    elastic:      every head (window // 2, 1/4): every span grows with the length.
    graded:       head h (window, h / heads): from a fixed local head to a nearly global one.
    local_global: the first heads // 2 heads (window, 0), the others (0, 1), i.e. global.
    """
    if profile == "uniform":
        return [(window, 0, 1)] * heads
    if profile == "elastic":
        return [(window // 2, 1, 4)] * heads
    if profile == "graded":
        return [(window, h, heads) for h in range(heads)]
    if profile == "local_global":
        return [(window, 0, 1) if h < heads // 2 else (0, 1, 1) for h in range(heads)]
    raise ValueError(f"moa: unknown profile {profile!r}; choose from {list(PROFILES)}")


def head_spans(profile: str, heads: int, window: int, seq_len: int) -> list[int]:
    """Span of each head at length seq_len (at least 1: a query always sees itself)."""
    return [max(1, alpha + num * seq_len // den) for alpha, num, den in head_rules(profile, heads, window)]


def _context(dim: int, seq_len: int, hp: dict) -> int:
    """Sum over heads of keys visible to a query, times the head width (= numbers per cached position)."""
    spans = head_spans(hp["profile"], hp["heads"], hp["window"], seq_len)
    return (dim // hp["heads"]) * sum(min(seq_len, s) for s in spans)


@register(
    "moa", category="attention", cost="L*(alpha+beta*L)",
    hparams={"heads": (2, 4, 8), "profile": PROFILES, "window": (16, 32, 64, 128), "rope": (True, False)},
    # decoding: head h keeps only its last span_h keys and values
    state_size=lambda dim, seq_len, hp: 2 * _context(dim, seq_len, hp),
    seq_flops=lambda dim, seq_len, hp: 4 * _context(dim, seq_len, hp),
    validate=lambda dim, hp: check_heads(dim, hp["heads"], hp["rope"]),
)
class MixtureOfSparseAttention(nn.Module):
    """Sliding-window heads with per-head spans alpha_h + beta_h * L, chosen by a named profile.

    Head h sees causal keys j in (i - span_h, i], non-causal |i - j| < span_h, with
    span_h = alpha_h + floor(beta_h * L). A span >= L makes its head full softmax attention. When
    the largest span is small against L the heads are computed in blocks of the largest span (each
    block against itself and its neighbours, one mask per head), O(L * max span); otherwise with one
    dense per-head mask. The causal form is causal at a given L; the spans depend on L itself (as in
    MoA, where they scale with the input length), so there is no length-free step form.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, profile: str = "graded",
                 window: int = 32, rope: bool = True):
        super().__init__()
        head_rules(profile, heads, window)  # raises on an unknown profile
        self.causal, self.profile, self.window = causal, profile, window
        self.qkv = QKV(dim, heads, heads, rope)
        self.out = nn.Linear(dim, dim, bias=False)

    def spans(self, seq_len: int) -> list[int]:
        return head_spans(self.profile, self.qkv.heads, self.window, seq_len)

    def mask(self, seq_len: int, device=None) -> torch.Tensor:
        """Allowed (query, key) pairs per head: (H, L, L) bool."""
        span = torch.tensor(self.spans(seq_len), device=device)[:, None, None]  # (H, 1, 1)
        i = torch.arange(seq_len, device=device)[:, None]
        j = torch.arange(seq_len, device=device)[None, :]
        if self.causal:
            return (j <= i) & (i - j < span)
        return (i - j).abs() < span

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        length = x.shape[1]
        q, k, v = self.qkv(x)  # (B, H, L, d)
        spans = self.spans(length)
        widest = max(spans)
        blocks_seen = 2 if self.causal else 3  # key blocks per query block in local_attention
        if blocks_seen * widest >= length:  # blocking would score more keys than dense: one mask per head
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask(length, x.device))
        else:
            span = torch.tensor(spans, device=x.device)[:, None, None, None]  # (H, 1, 1, 1)
            if self.causal:
                y = local_attention(q, k, v, widest, True, lambda i, j: (j <= i) & (i - j < span))
            else:
                y = local_attention(q, k, v, widest, False, lambda i, j: (i - j).abs() < span)
        return self.out(merge_heads(y))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention matrix forward uses, made explicit: (B, L, D) -> (B, H, L, L), rows sum to 1."""
        q, k, _ = self.qkv(x)
        scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, H, L, L)
        scores = scores.masked_fill(~self.mask(x.shape[1], x.device), float("-inf"))
        return scores.softmax(-1)
