"""Routing attention (Routing Transformer, Roy et al. 2021): online k-means on the shared query-keys,
softmax attention within each cluster."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.attention.common import append_cache, attention_flops, check_heads
from einsearch.ops.common import HasAuxLoss, merge_heads, split_heads
from einsearch.ops.registry import register

EMA_DECAY = 0.999
COMMITMENT_COEF = 1e-4


@register(
    "routing_attention", category="attention", cost="L^2",
    hparams={"heads": (1, 2, 4, 8), "clusters": (2, 4, 8)},
    state_size=lambda dim, seq_len, hp: 2 * seq_len * dim + seq_len * hp["heads"],
    seq_flops=attention_flops, validate=lambda dim, hp: check_heads(dim, hp["heads"]),
)
class RoutingAttention(HasAuxLoss):
    """Shared QK: keys are the unit-normalised queries k = q/|q|. Each token joins the centroid nearest
    to its own k (per head), and attends the tokens of its cluster (causal: only earlier ones). Per-token
    assignment keeps causality; balanced top-w membership would let later tokens evict earlier ones.

    Centroids are buffers (H, clusters, d) on the unit sphere, moved in training by an EMA (0.999) of
    the mean key of their members after the output is computed; training also sets
    aux_loss = 1e-4 * mean |k - centroid(k)|^2 (commitment). The mask is applied to dense logits:
    O(L^2) compute. No positional encoding. Decoding state: keys, values and cluster ids of the
    past (the step form never moves the centroids).
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, clusters: int = 4):
        super().__init__()
        self.causal, self.heads = causal, heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        self.register_buffer("centroids", F.normalize(torch.randn(heads, clusters, dim // heads), dim=-1))
        self.aux_loss: torch.Tensor | None = None

    def _route(self, x: torch.Tensor):
        """x (B, L, D) -> q, unit keys k, v (B, H, L, d) and cluster ids (B, H, L)."""
        q, v = split_heads(self.q(x), self.heads), split_heads(self.v(x), self.heads)
        k = F.normalize(q, dim=-1)
        cluster = torch.einsum("bhld,hcd->bhlc", k, self.centroids).argmax(-1)
        return q, k, v, cluster

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        q, k, v, cluster = self._route(x)
        mask = cluster[..., :, None] == cluster[..., None, :]  # (B, H, L, L); the diagonal is always on
        if self.causal:
            length = x.shape[1]
            mask = mask & torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        if self.training:
            head = torch.arange(self.heads, device=x.device)[:, None]
            nearest = self.centroids[head, cluster]  # (B, H, L, d)
            self.aux_loss = COMMITMENT_COEF * (k - nearest).pow(2).sum(-1).mean()
            self._update_centroids(k.detach(), cluster)
        else:
            self.aux_loss = None
        return self.out(merge_heads(y))

    @torch.no_grad()
    def _update_centroids(self, k: torch.Tensor, cluster: torch.Tensor) -> None:
        """EMA of each centroid toward the mean of its members' keys; empty clusters stay put."""
        n_heads, n_clusters, d = self.centroids.shape
        members = F.one_hot(cluster, n_clusters).to(k.dtype)  # (B, H, L, C)
        sums = torch.einsum("bhlc,bhld->hcd", members, k)
        counts = members.sum((0, 2))[..., None]  # (H, C, 1)
        means = sums / counts.clamp(min=1)
        moved = F.normalize(EMA_DECAY * self.centroids + (1 - EMA_DECAY) * means, dim=-1)
        self.centroids.copy_(torch.where(counts > 0, moved, self.centroids))

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, ...]:
        weight = self.out.weight
        device, dtype = device or weight.device, dtype or weight.dtype
        empty = torch.zeros(batch, self.heads, 0, self.centroids.shape[-1], device=device, dtype=dtype)
        return empty, empty.clone(), torch.zeros(batch, self.heads, 0, dtype=torch.long, device=device)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """x_t (B, D) -> y_t (B, D); state: keys, values (B, H, T, d), cluster ids (B, H, T). Causal only."""
        k_cache, v_cache, c_cache = state
        q, k, v, cluster = self._route(x_t[:, None])
        k_cache, v_cache = append_cache(k_cache, k), append_cache(v_cache, v)
        c_cache = torch.cat([c_cache, cluster], -1)
        mask = (c_cache == cluster)[..., None, :]  # (B, H, 1, T)
        y = F.scaled_dot_product_attention(q, k_cache, v_cache, attn_mask=mask)
        return self.out(merge_heads(y))[:, 0], (k_cache, v_cache, c_cache)
