"""Mixture of attention experts (BAM, Zhang et al. 2024, "BAM! Just Like That: Simple and Efficient
Parameter Upcycling for Mixture of Experts", arXiv:2408.08274): E softmax-attention experts, a
per-token top-k router, outputs summed with the router weights; optionally keys and values shared by
all experts (BAM's KV-sharing variant: only query and output projections are per expert).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.attention.common import (append_cache, empty_kv_cache, attention_flops, check_heads, masked_softmax, rope)
from einsearch.ops.common import HasAuxLoss, split_heads
from einsearch.ops.registry import register

BALANCE_COEF = 0.01


def _validate(dim: int, hp: dict) -> str | None:
    if hp["top_k"] > hp["experts"]:
        return f"top_k={hp['top_k']} exceeds experts={hp['experts']}"
    return check_heads(dim, hp["heads"], hp["rope"])


def _state(dim: int, seq_len: int, hp: dict) -> int:
    """KV cache: one (keys, values) pair per expert, or one shared by all."""
    return 2 * seq_len * dim * (1 if hp["shared_kv"] else hp["experts"])


@register(
    "bam", category="attention", cost="L^2",
    hparams={"experts": (2, 4, 8), "top_k": (1, 2, 4), "heads": (1, 2, 4, 8), "shared_kv": (False, True),
             "rope": (True, False)},
    state_size=_state,
    # every expert is computed densely (the gates zero the unselected ones), so FLOPs charge all E
    # experts' weights and attentions: no active_params, unlike the MoE FFNs, which skip them
    seq_flops=lambda dim, seq_len, hp: hp["experts"] * attention_flops(dim, seq_len, hp),
    validate=_validate,
)
class MixtureOfAttentionExperts(HasAuxLoss):
    """Attention experts mixed per token by a top-k router (BAM's mixture of attention).

    y_t = sum_{e in top-k(t)} g_e(t) Attn_e(x)_t, each expert a full-width multi-head softmax
    attention (own W_q, W_o; own or shared W_k, W_v). Router: p = softmax(W_r x_t); the gates are the
    top-k probabilities renormalised to sum 1 (a softmax over the top-k logits); with top_k = 1 the
    gate is the raw top probability (Switch-style, else the router would get no gradient).

    Training sets aux_loss = 0.01 * E * sum_e f_e P_e (f_e: share of routed slots going to e, P_e:
    mean router probability). Causal: every expert is causal and routing is per token. The experts
    are computed densely for every token (zero gate off the top-k), so compute is E attentions.
    Decoding state: the KV cache of every expert (one cache when shared_kv).
    """

    def __init__(self, dim: int, causal: bool = True, experts: int = 4, top_k: int = 2, heads: int = 2,
                 shared_kv: bool = False, rope: bool = True):
        super().__init__()
        if not 1 <= top_k <= experts:
            raise ValueError(f"bam: top_k={top_k} must be between 1 and experts={experts}")
        self.causal, self.experts, self.top_k, self.heads = causal, experts, top_k, heads
        self.shared_kv, self.rope, self.head_dim = shared_kv, rope, dim // heads
        self.kv_heads = heads if shared_kv else experts * heads
        self.router = nn.Linear(dim, experts, bias=False)
        self.q = nn.Linear(dim, experts * dim, bias=False)  # expert e: output rows e*D..(e+1)*D
        self.k = nn.Linear(dim, self.kv_heads * self.head_dim, bias=False)
        self.v = nn.Linear(dim, self.kv_heads * self.head_dim, bias=False)
        self.out = nn.Linear(experts * dim, dim, bias=False)  # expert e: input columns e*D..(e+1)*D
        self.aux_loss: torch.Tensor | None = None

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, L, D) -> gates (B, L, E) (zero off the top-k), probabilities, chosen mask (B, L, E)."""
        probs = self.router(x).softmax(-1)  # (B, L, E)
        top = probs.topk(self.top_k, -1).indices
        chosen = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, top, True)
        gates = probs * chosen
        if self.top_k > 1:
            gates = gates / gates.sum(-1, keepdim=True)
        return gates, probs, chosen

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """Per-token expert weights (B, L, E), zero off the top-k; sets aux_loss in training mode."""
        gates, probs, chosen = self.route(x)
        if self.training:
            share = chosen.flatten(0, -2).to(probs.dtype).mean(0) / self.top_k  # f_e, sums to 1
            self.aux_loss = BALANCE_COEF * self.experts * (share * probs.flatten(0, -2).mean(0)).sum()
        else:
            self.aux_loss = None
        return gates

    def project(self, x: torch.Tensor, start: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, L, D) at positions start.. -> q (B, E*H, L, d); k, v (B, E*H or H, L, d)."""
        q = split_heads(self.q(x), self.experts * self.heads)
        k, v = split_heads(self.k(x), self.kv_heads), split_heads(self.v(x), self.kv_heads)
        if self.rope:
            q, k = rope(q, start), rope(k, start)
        return q, k, v

    def _expand(self, t: torch.Tensor) -> torch.Tensor:
        """Shared keys/values (B, H, T, d) -> one copy per expert (B, E*H, T, d)."""
        if not self.shared_kv:
            return t
        b, h, n, d = t.shape
        return t[:, None].expand(b, self.experts, h, n, d).reshape(b, self.experts * h, n, d)

    def combine(self, y: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """Expert outputs y (B, E*H, L, d), gates (B, L, E) -> sum_e g_e W_o^e y_e: (B, L, D)."""
        b, _, n, d = y.shape
        y = y.view(b, self.experts, self.heads, n, d) * gates.permute(0, 2, 1)[:, :, None, :, None]
        return self.out(y.permute(0, 3, 1, 2, 4).reshape(b, n, -1))  # (B, L, E*H*d) -> (B, L, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        gates = self.gates(x)  # (B, L, E)
        q, k, v = self.project(x)
        y = F.scaled_dot_product_attention(q, self._expand(k), self._expand(v), is_causal=self.causal)
        return self.combine(y, gates)

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Gate-weighted mean of the experts' attention matrices: (B, L, D) -> (B, heads, L, L), rows
        sum to 1 (gates renormalised per token). For analysis; forward never calls it."""
        gates = self.route(x)[0]
        gates = gates / gates.sum(-1, keepdim=True)  # (B, L, E)
        q, k, _ = self.project(x)
        scores = q @ self._expand(k).transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, E*H, L, L)
        b, _, n, _ = scores.shape
        weights = masked_softmax(scores, self.causal).view(b, self.experts, self.heads, n, n)
        return (weights * gates.permute(0, 2, 1)[:, :, None, :, None]).sum(1)

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
        return empty_kv_cache(batch, self.kv_heads, self.head_dim, self.out.weight, device, dtype)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """x_t (B, D) -> y_t (B, D); state: the keys and values so far. Causal mode only."""
        k_cache, v_cache = state
        x_t = x_t[:, None]
        q, k, v = self.project(x_t, start=k_cache.shape[2])
        k_cache, v_cache = append_cache(k_cache, k), append_cache(v_cache, v)
        y = F.scaled_dot_product_attention(q, self._expand(k_cache), self._expand(v_cache))
        return self.combine(y, self.gates(x_t))[:, 0], (k_cache, v_cache)
