"""Gated DeltaNet (Yang et al., 2025): the delta rule with a Mamba-2-style scalar decay per head."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.recurrent.deltanet import DeltaNet, delta_seq_flops, delta_state_size, validate_heads
from einsearch.ops.registry import register


@register(
    "gated_deltanet", category="recurrent", cost="L",
    hparams={"heads": (1, 2, 4, 8), "chunk": (16, 32, 64)},
    state_size=delta_state_size, seq_flops=delta_seq_flops, validate=validate_heads,
    compute_only=("chunk",),
)
class GatedDeltaNet(DeltaNet):
    """S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, o_t = S_t^T q_t, per head.

    a_t = exp(-exp(A_log) softplus(W_a x_t + dt_bias)) (A init uniform(1, 16), dt init log-uniform
    in [1e-3, 0.1]); everything else as DeltaNet, with the output gate W_o(RMSNorm_head(o) *
    swish(W_g x)). The decay is a scalar per head, so the chunked form exponentiates only
    differences of cumulative log decays that are <= 0 (no clamp needed). A recurrence: with
    causal=False it runs the same causal form.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, chunk: int = 16):
        super().__init__(dim, causal=causal, heads=heads, chunk=chunk)
        self.a_proj = nn.Linear(dim, heads, bias=False)
        self.A_log = nn.Parameter(torch.log(torch.empty(heads).uniform_(1, 16)))
        dt = torch.exp(torch.empty(heads).uniform_(math.log(1e-3), math.log(0.1)))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus(dt_bias) = dt
        self.g_proj = nn.Linear(dim, dim, bias=False)

    def _log_decay(self, x: torch.Tensor) -> torch.Tensor:
        """log a_t (B, H, L)."""
        return (-torch.exp(self.A_log) * F.softplus(self.a_proj(x) + self.dt_bias)).transpose(1, 2)

    def _output(self, x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        return self.o_proj(self.norm(o, self.g_proj(x)))
