"""MoE with routing over a graph of tokens (Nguyen, Tran, Nguyen & Baraniuk, "Improving Routing in
Sparse Mixture of Experts with Graph of Tokens", 2025).

A plain softmax router picks each token's experts from that token alone: p_i = softmax(W_r x_i).
Here the router probabilities are smoothed over related tokens before the top-k choice:

    p~_i = sum_j S_ij p_j        (S row-stochastic, (B, L, L))

- `similarity_moe` (Similarity-Aware MoE): S_ij = softmax_j(x_i^T W_s x_j / sqrt(D)), a learned
  bilinear similarity of the layer's own input tokens.
- `attention_moe` (Attention-Aware MoE): S = the attention matrix of the attention layer before it,
  averaged over heads (read from the cross-layer context, see einsearch.ops.context). The matrix is
  not detached: the routing's gradient also reaches that layer's query and key projections.

Selection, gating, the balancing loss and the dropless dispatch are those of `moe` (softmax
router) applied to p~: top-k of p~_i, gates the selected p~ (renormalised when top_k > 1), loss
alpha * E * sum_e f_e P~_e. FLOPs per token count top_k experts, as for `moe`.

Causal forms: S_ij = 0 for j > i (the similarity softmax masks later tokens; the attention matrix is
masked with tril, a no-op for a causal attention layer), so token i's routing reads tokens <= i
only. The dispatch is per token, bit-exact (see MoE.dispatch).

Reading of the paper (its formulas were not available while writing this): the smoothing acts on
the router's softmax probabilities, with the similarity's temperature sqrt(D); heads of a
multi-head attention matrix are averaged.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from einsearch.ops.attention.common import masked_softmax
from einsearch.ops.channel.moe import MoE, moe_active_params
from einsearch.ops.context import ContextConsumer
from einsearch.ops.registry import register

HPARAMS = {"experts": (4, 8), "top_k": (1, 2), "shared_expert": (False, True), "expand": (1, 2, 4)}


class GraphRoutedMoE(MoE, ContextConsumer):
    """Dropless top-k MoE whose softmax router probabilities are smoothed by a token graph S (B, L, L)."""

    def __init__(self, dim: int, causal: bool = True, experts: int = 8, top_k: int = 2,
                 shared_expert: bool = False, expand: int = 2, aux_alpha: float = 0.01):
        super().__init__(dim, causal, experts=experts, top_k=top_k, router="softmax",
                         shared_expert=shared_expert, expand=expand, aux_alpha=aux_alpha)
        self.causal = causal

    def token_graph(self, x: torch.Tensor) -> torch.Tensor | None:
        """Row-stochastic S (B, L, L) for x (B, L, D), or None to route each token on its own."""
        raise NotImplementedError

    def route_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, D) -> gates (B*L, k), expert indices (B*L, k); sets aux_loss in training mode."""
        probs = self.router(x).softmax(-1)  # (B, L, E)
        graph = self.token_graph(x)
        if graph is not None:
            probs = graph @ probs  # p~_i = sum_j S_ij p_j
        probs = probs.reshape(-1, self.experts)  # (N, E)
        chosen_scores, chosen = probs.topk(self.top_k, dim=-1)
        self.aux_loss = self._balance_loss(probs, chosen) if self.training else None
        if self.top_k > 1:
            chosen_scores = chosen_scores / chosen_scores.sum(-1, keepdim=True)
        return chosen_scores, chosen


def _moe_flops(dim: int, seq_len: int, hp: dict) -> int:
    """Per-token FLOPs of S @ P (the similarity's own term is added by similarity_moe)."""
    return 2 * seq_len * hp["experts"]


@register(
    "similarity_moe", category="moe", cost="L^2", hparams=HPARAMS,
    # decoding keeps every past token's key W_s x_j... and router probabilities
    state_size=lambda dim, seq_len, hp: seq_len * (dim + hp["experts"]),
    seq_flops=lambda dim, seq_len, hp: 2 * seq_len * dim + _moe_flops(dim, seq_len, hp),
    # router, top_k experts (+ shared) and the similarity's W_s: not all E experts
    active_params=lambda dim, hp: moe_active_params(dim, hp) + dim * dim,
)
class SimilarityMoE(GraphRoutedMoE):
    """Similarity-aware MoE: router probabilities averaged over similar tokens,
    S_ij = softmax_j(x_i^T W_s x_j / sqrt(D)) (causal: over j <= i)."""

    def __init__(self, dim: int, causal: bool = True, experts: int = 8, top_k: int = 2,
                 shared_expert: bool = False, expand: int = 2, aux_alpha: float = 0.01):
        super().__init__(dim, causal, experts, top_k, shared_expert, expand, aux_alpha)
        self.similarity = nn.Linear(dim, dim, bias=False)  # W_s

    def token_graph(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.similarity(x) @ x.transpose(1, 2) / math.sqrt(x.shape[-1])  # (B, L, L)
        return masked_softmax(scores, self.causal)


@register(
    "attention_moe", category="moe", cost="L^2", hparams=HPARAMS,
    state_size=lambda dim, seq_len, hp: seq_len * hp["experts"],  # past router probabilities
    seq_flops=_moe_flops, needs_context=("attention",),
    active_params=moe_active_params,  # router, top_k experts (+ shared): not all E experts
)
class AttentionMoE(GraphRoutedMoE):
    """Attention-aware MoE: router probabilities averaged with the previous attention layer's weights,
    S = mean over heads of its attention matrix (causal: tril of it).

    The matrix is used as given: rows of a sigmoid attention's matrix need not sum to 1, and then
    neither do p~. Fallback: with no attention matrix in the context (no attention primitive before it in the net,
    or run on its own), S = I: it routes exactly like `moe` with the softmax router.
    """

    context_needs = ("attention",)

    def token_graph(self, x: torch.Tensor) -> torch.Tensor | None:
        attention = self.context.attention if self.context is not None else None
        if attention is None:
            return None
        batch, length, _ = x.shape
        if attention.dim() != 4 or attention.shape[0] != batch or attention.shape[2:] != (length, length):
            raise ValueError(f"attention_moe: attention matrix of shape {tuple(attention.shape)} does not "
                             f"fit an input of batch {batch} and length {length}")
        graph = attention.mean(1)  # (B, L, L)
        return graph.tril() if self.causal else graph
