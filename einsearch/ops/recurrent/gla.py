"""Gated linear attention (GLA, Yang et al., 2024): data-dependent per-channel forget gates."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.common import split_heads
from einsearch.ops.recurrent.chunk import MIN_LOG_DECAY, gated_scan
from einsearch.ops.recurrent.norm import HeadRMSNorm
from einsearch.ops.registry import register

GATE_RANK = 16  # low rank of the gate projection
GATE_TEMPERATURE = 16  # log alpha = logsigmoid(.) / 16 keeps gates near 1 at init


def _validate(dim: int, hp: dict) -> str | None:
    if dim % (2 * hp["heads"]):
        return f"2 * heads = {2 * hp['heads']} must divide dim={dim} (keys are dim/2 wide)"
    return None


def _seq_flops(dim: int, seq_len: int, hp: dict) -> int:
    heads, chunk = hp["heads"], hp["chunk"]
    dk, dv = dim // (2 * heads), dim // heads
    return heads * (2 * chunk * (dk + dv) + 4 * dk * dv)


@register(
    "gla", category="recurrent", cost="L",
    hparams={"heads": (1, 2, 4, 8), "chunk": (16, 32, 64)},
    state_size=lambda dim, seq_len, hp: dim * dim // (2 * hp["heads"]), seq_flops=_seq_flops,
    validate=_validate,
    compute_only=("chunk",),
)
class GLA(nn.Module):
    """S_t = diag(alpha_t) S_{t-1} + k_t v_t^T, o_t = S_t^T q_t, per head; keys dim/2 wide, values dim.

    log alpha_t = logsigmoid(W2 W1 x_t + b) / 16 (rank 16), clamped at MIN_LOG_DECAY = -5 per step
    (alpha >= 0.0067; reached only when W2 W1 x + b < -80) so that the chunked scan's bounded
    factorisation stays finite in float32. q is scaled by dk^-1/2; output = W_o(RMSNorm_head(o) *
    swish(W_g x)). A recurrence: with causal=False it runs the same causal form.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, chunk: int = 16):
        super().__init__()
        problem = _validate(dim, {"heads": heads})
        if problem:
            raise ValueError(f"gla: {problem}")
        self.causal, self.heads, self.chunk = causal, heads, chunk
        self.q_proj = nn.Linear(dim, dim // 2, bias=False)
        self.k_proj = nn.Linear(dim, dim // 2, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.g_proj = nn.Linear(dim, dim, bias=False)
        self.gate_down = nn.Linear(dim, GATE_RANK, bias=False)
        self.gate_up = nn.Linear(GATE_RANK, dim // 2)
        self.norm = HeadRMSNorm(dim // heads)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def _inputs(self, x: torch.Tensor):
        """(B, L, D) -> q, k (B, H, L, dk), v (B, H, L, dv), log alpha (B, H, L, dk)."""
        q = split_heads(self.q_proj(x), self.heads)
        q = q * q.shape[-1] ** -0.5
        k = split_heads(self.k_proj(x), self.heads)
        v = split_heads(self.v_proj(x), self.heads)
        log_alpha = F.logsigmoid(self.gate_up(self.gate_down(x))) / GATE_TEMPERATURE
        return q, k, v, split_heads(log_alpha.clamp(min=MIN_LOG_DECAY), self.heads)

    def scan(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        """(B, L, D) -> (y, (S (B, H, dk, dv),)) after the last token."""
        o, s = gated_scan(*self._inputs(x), self.chunk)
        return self.o_proj(self.norm(o, self.g_proj(x))), (s,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        return self.scan(x)[0]

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor]:
        w = self.o_proj.weight
        dk, dv = self.q_proj.out_features // self.heads, w.shape[0] // self.heads
        return (torch.zeros(batch, self.heads, dk, dv, device=device or w.device, dtype=dtype or w.dtype),)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        """One causal step: x_t (B, D) -> y_t (B, D), new state."""
        x = x_t.unsqueeze(1)
        q, k, v, log_alpha = self._inputs(x)  # (B, H, 1, .)
        s = log_alpha.exp().transpose(-1, -2) * state[0] + k.transpose(-1, -2) @ v
        return self.o_proj(self.norm(q @ s, self.g_proj(x))).squeeze(1), (s,)
