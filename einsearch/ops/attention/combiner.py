"""Combiner (Ren et al. 2021, "Combiner: Full Attention Transformer with Sparse Computation Cost",
NeurIPS, arXiv:2107.05768), the block ("fixed"/axial sqrt-decomposition) form: every position
attends directly to the positions of its own block and, through one summary each, to the other
blocks, all in one softmax, so each position reaches the whole (causal: past) sequence at
O(L * (block + L / block)) cost.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.common import merge_heads
from einsearch.ops.attention.common import QKV, blocks, check_heads
from einsearch.ops.registry import register

SUMMARIES = ("mean", "max")


def _context(seq_len: int, block: int) -> int:
    """Keys one query scores: its block plus one summary per block."""
    return min(seq_len, block) + -(-seq_len // block)


@register(
    "combiner", category="attention", cost="L*(b+L/b)",
    hparams={"heads": (1, 2, 4, 8), "block": (8, 16, 32, 64), "summary": SUMMARIES, "rope": (True, False)},
    # decoding: the current block's keys/values and one (key, value) summary per finished block
    state_size=lambda dim, seq_len, hp: 2 * dim * _context(seq_len, hp["block"]),
    seq_flops=lambda dim, seq_len, hp: 4 * dim * _context(seq_len, hp["block"]),
    validate=lambda dim, hp: check_heads(dim, hp["heads"], hp["rope"]),
)
class CombinerAttention(nn.Module):
    """Direct attention within a block plus one summary per other (causal: earlier) block.

    Query i in block n: one softmax over the keys of block n (causal: j <= i) and one summary
    (k_r, v_r) per other block r (causal: r < n only, so a summary never holds a position after i).

    summary "mean": k_r, v_r = block means of keys and values (a uniform local expectation).
    summary "max" (Combiner's deepset-max pooling): k_r = max_j relu(P_k k_j), elementwise over the
    block; v_r = sum_j softmax_j(qbar_r . k_j / sqrt(d)) v_j, the local expectation under a
    query-independent distribution from the pooled query qbar_r = max_j relu(P_q q_j); P_k, P_q are
    learned (head_dim x head_dim, shared by the heads). A last, shorter block is summarised over its
    real positions only. With block >= L this is softmax attention.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, block: int = 16, summary: str = "mean",
                 rope: bool = True):
        super().__init__()
        if summary not in SUMMARIES:
            raise ValueError(f"combiner: unknown summary {summary!r}; choose from {list(SUMMARIES)}")
        if block < 1:
            raise ValueError(f"combiner: block must be positive, got {block}")
        self.causal, self.block, self.summary = causal, block, summary
        self.qkv = QKV(dim, heads, heads, rope)
        self.out = nn.Linear(dim, dim, bias=False)
        if summary == "max":
            head_dim = dim // heads
            self.pool_k = nn.Linear(head_dim, head_dim, bias=False)
            self.pool_q = nn.Linear(head_dim, head_dim, bias=False)

    def _summaries(self, qb: torch.Tensor, kb: torch.Tensor, vb: torch.Tensor, real: torch.Tensor):
        """Blocks (B, H, nb, b, d), real (nb, b) -> summary keys, values (B, H, nb, d) and the
        distribution each summary puts on its block's positions (B, H, nb, b)."""
        if self.summary == "mean":
            within = (real.to(kb.dtype) / real.sum(-1, keepdim=True)).expand(kb.shape[:-1])
            return (within[..., None] * kb).sum(-2), (within[..., None] * vb).sum(-2), within
        pad = ~real[..., None]  # (nb, b, 1)
        keys = F.relu(self.pool_k(kb)).masked_fill(pad, float("-inf")).amax(-2)  # (B, H, nb, d)
        query = F.relu(self.pool_q(qb)).masked_fill(pad, float("-inf")).amax(-2)  # (B, H, nb, d)
        logits = (query[..., None, :] * kb).sum(-1) / math.sqrt(kb.shape[-1])  # (B, H, nb, b)
        within = logits.masked_fill(~real, float("-inf")).softmax(-1)
        return keys, (within[..., None] * vb).sum(-2), within

    def _layout(self, x: torch.Tensor):
        """Everything one softmax needs: query blocks (B, H, nb, b, d), keys and values per block
        (B, H, nb, b + nb, d): [the block's own positions, the nb summaries], the mask
        (nb, b, b + nb), and the summaries' distributions over their blocks (B, H, nb, b)."""
        length = x.shape[1]
        b = min(self.block, length)
        q, k, v = self.qkv(x)  # (B, H, L, d)
        pad = -length % b
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        nb = (length + pad) // b
        qb, kb, vb = blocks(q, b), blocks(k, b), blocks(v, b)
        pos = torch.arange(nb * b, device=x.device).view(nb, b)
        real = pos < length  # (nb, b)
        sk, sv, within = self._summaries(qb, kb, vb, real)
        shape = (*sk.shape[:2], nb, nb, sk.shape[-1])  # every block sees all nb summaries
        keys = torch.cat([kb, sk[:, :, None].expand(shape)], 3)
        values = torch.cat([vb, sv[:, :, None].expand(shape)], 3)
        offset = torch.arange(b, device=x.device)
        direct = real[:, None, :].expand(nb, b, b)  # (query block, query offset, key offset)
        n, r = torch.arange(nb, device=x.device)[:, None], torch.arange(nb, device=x.device)[None, :]
        if self.causal:
            direct = direct & (offset[None, None, :] <= offset[None, :, None])
            summarised = r < n
        else:
            summarised = r != n
        mask = torch.cat([direct, summarised[:, None, :].expand(nb, b, nb)], -1)
        return qb, keys, values, mask, within

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        length = x.shape[1]
        qb, keys, values, mask, _ = self._layout(x)
        y = F.scaled_dot_product_attention(qb, keys, values, attn_mask=mask)  # (B, H, nb, b, d)
        y = y.flatten(2, 3)[:, :, :length]
        return self.out(merge_heads(y))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The effective attention matrix (B, H, L, L), rows sum to 1: direct weights, plus each
        summary's weight spread over its block by the summary's distribution. For analysis; forward
        never builds it (O(L^2))."""
        length = x.shape[1]
        qb, keys, _, mask, within = self._layout(x)
        scores = (qb @ keys.transpose(-1, -2)) / math.sqrt(qb.shape[-1])
        probs = scores.masked_fill(~mask, float("-inf")).softmax(-1)  # (B, H, nb, b, b + nb)
        nb, b = qb.shape[2], qb.shape[3]
        direct, summarised = probs[..., :b], probs[..., b:]
        # (B, H, nb_q, b_q, nb_r, b_r): summary r's weight times its distribution over block r
        full = summarised[..., None] * within[:, :, None, None]
        full = full + torch.eye(nb, dtype=probs.dtype, device=x.device)[:, None, :, None] * direct[:, :, :, :, None]
        return full.reshape(*probs.shape[:2], nb * b, nb * b)[:, :, :length, :length]
