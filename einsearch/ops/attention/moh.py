"""Mixture-of-head attention (MoH, Jin et al. 2024): per-token weights on shared and routed heads."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.attention.common import (QKV, append_cache, empty_kv_cache, attention_flops, check_heads, masked_softmax)
from einsearch.ops.common import HasAuxLoss, merge_heads
from einsearch.ops.registry import register

BALANCE_COEF = 0.01


def _validate(dim: int, hp: dict) -> str | None:
    routed = hp["heads"] - hp["shared"]
    if hp["topk"] > routed:
        return f"topk={hp['topk']} exceeds the {routed} routed heads (heads - shared)"
    return check_heads(dim, hp["heads"], hp["rope"])


@register(
    "moh_attention", category="attention", cost="L^2",
    hparams={"heads": (4, 8), "shared": (1, 2), "topk": (1, 2, 4), "rope": (True, False)},
    state_size=lambda dim, seq_len, hp: 2 * seq_len * dim,
    seq_flops=attention_flops, validate=_validate,
)
class MixtureOfHeadAttention(HasAuxLoss):
    """o = W_o [g_1 head_1; ...; g_H head_H]. Shared heads: g = a_1 softmax(W_s x); routed heads:
    g = a_2 * (top-k of softmax(W_r x), renormalised), 0 off the top-k; [a_1, a_2] = 2 softmax(W_h x).

    Training sets aux_loss = 0.01 * sum_i f_i P_i over routed heads (f_i: share of tokens routing to
    i, P_i: mean routing probability). All heads are computed densely; the gates only weight them.
    Decoding state: the KV cache (B, H, T, head_dim) x 2.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 8, shared: int = 2, topk: int = 4,
                 rope: bool = True):
        super().__init__()
        hp = {"heads": heads, "shared": shared, "topk": topk, "rope": rope}
        self.causal, self.shared, self.topk = causal, shared, topk
        self.qkv = QKV(dim, heads, heads, rope)
        self.out = nn.Linear(dim, dim, bias=False)
        self.route_shared = nn.Linear(dim, shared, bias=False)
        self.route_routed = nn.Linear(dim, heads - shared, bias=False)
        self.route_groups = nn.Linear(dim, 2, bias=False)
        self.aux_loss: torch.Tensor | None = None

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """Per-token head weights (B, L, H); sets self.aux_loss in training mode."""
        shared = self.route_shared(x).softmax(-1)  # (B, L, S)
        probs = self.route_routed(x).softmax(-1)  # (B, L, R)
        top = probs.topk(self.topk, -1).indices
        chosen = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, top, True)
        routed = probs * chosen
        routed = routed / routed.sum(-1, keepdim=True)
        groups = 2 * self.route_groups(x).softmax(-1)  # (B, L, 2)
        if self.training:
            share = chosen.flatten(0, -2).to(probs.dtype).mean(0)  # f_i
            self.aux_loss = BALANCE_COEF * (share * probs.flatten(0, -2).mean(0)).sum()
        else:
            self.aux_loss = None
        return torch.cat([groups[..., :1] * shared, groups[..., 1:] * routed], -1)

    def attend(self, x: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """Multi-head attention with head h's output scaled by gates[..., h]: x (B, L, D), gates (B, L, H)."""
        q, k, v = self.qkv(x)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)  # (B, H, L, d)
        return self.out(merge_heads(y * gates.transpose(1, 2)[..., None]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        return self.attend(x, self.gates(x))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Every head's attention matrix, made explicit: (B, L, D) -> (B, heads, L, L), rows sum to 1.

        The per-token gates weight the heads' outputs afterwards (forward = out(gates * (A @ v)));
        a head the router skips for a token still has its row here.
        """
        q, k, _ = self.qkv(x)  # (B, H, L, d)
        scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
        return masked_softmax(scores, self.causal)

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
        return empty_kv_cache(batch, self.qkv.heads, self.qkv.head_dim, self.out.weight, device, dtype)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """x_t (B, D) -> y_t (B, D); causal mode only."""
        k_cache, v_cache = state
        x_t = x_t[:, None]
        q, k, v = self.qkv(x_t, start=k_cache.shape[2])
        k_cache, v_cache = append_cache(k_cache, k), append_cache(v_cache, v)
        y = F.scaled_dot_product_attention(q, k_cache, v_cache)
        y = y * self.gates(x_t).transpose(1, 2)[..., None]
        return self.out(merge_heads(y))[:, 0], (k_cache, v_cache)
