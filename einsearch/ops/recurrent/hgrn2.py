"""HGRN2 (Qin et al., 2024): gated linear RNN with state expansion; keys are 1 - forget gate."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.common import split_heads
from einsearch.ops.recurrent.chunk import MIN_LOG_DECAY, gated_scan
from einsearch.ops.recurrent.norm import HeadRMSNorm
from einsearch.ops.registry import register


def _validate(dim: int, hp: dict) -> str | None:
    return f"heads={hp['heads']} must divide dim={dim}" if dim % hp["heads"] else None


def _seq_flops(dim: int, seq_len: int, hp: dict) -> int:
    d = dim // hp["heads"]
    return hp["heads"] * (4 * hp["chunk"] * d + 4 * d * d)


@register(
    "hgrn2", category="recurrent", cost="L",
    hparams={"heads": (1, 2, 4, 8), "lower_bound": (0.0, 0.5, 0.9), "chunk": (16, 32, 64)},
    state_size=lambda dim, seq_len, hp: dim * dim // hp["heads"], seq_flops=_seq_flops, validate=_validate,
    compute_only=("chunk",),
)
class HGRN2(nn.Module):
    """GLA form with tied key and forget gate: S_t = diag(f_t) S_{t-1} + (1 - f_t) v_t^T, o_t = S_t^T q_t.

    f_t = lb + (1 - lb) sigmoid(W_f x_t): lb is the forget gate's lower bound. HGRN2 learns one bound
    per layer, rising with depth; here it is a per-primitive choice (0: free gate, as in the lowest
    layer; 0.5, 0.9: long memory, as in deeper layers). log f is clamped at MIN_LOG_DECAY = -5
    (f >= 0.0067, only active when lb = 0) for the chunked scan's float32 bound. q = swish(W_q x);
    output W_o(RMSNorm_head(o)). A recurrence: with causal=False it runs the same causal form.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, lower_bound: float = 0.0, chunk: int = 16):
        super().__init__()
        problem = _validate(dim, {"heads": heads})
        if problem or not 0.0 <= lower_bound < 1.0:
            raise ValueError(f"hgrn2: {problem or f'lower_bound must be in [0, 1), got {lower_bound}'}")
        self.causal, self.heads, self.lower_bound, self.chunk = causal, heads, lower_bound, chunk
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.f_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.norm = HeadRMSNorm(dim // heads)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def _inputs(self, x: torch.Tensor):
        """(B, L, D) -> q, k = 1 - f, v, log f, each (B, H, L, d)."""
        f = self.lower_bound + (1 - self.lower_bound) * torch.sigmoid(self.f_proj(x))
        log_f = torch.log(f).clamp(min=MIN_LOG_DECAY)
        q = split_heads(F.silu(self.q_proj(x)), self.heads)
        k = split_heads(1 - torch.exp(log_f), self.heads)
        return q, k, split_heads(self.v_proj(x), self.heads), split_heads(log_f, self.heads)

    def scan(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        """(B, L, D) -> (y, (S (B, H, d, d),)) after the last token."""
        o, s = gated_scan(*self._inputs(x), self.chunk)
        return self.o_proj(self.norm(o)), (s,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        return self.scan(x)[0]

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor]:
        w = self.o_proj.weight
        d = w.shape[0] // self.heads
        return (torch.zeros(batch, self.heads, d, d, device=device or w.device, dtype=dtype or w.dtype),)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        """One causal step: x_t (B, D) -> y_t (B, D), new state."""
        q, k, v, log_f = self._inputs(x_t.unsqueeze(1))  # (B, H, 1, d)
        s = log_f.exp().transpose(-1, -2) * state[0] + k.transpose(-1, -2) @ v
        return self.o_proj(self.norm(q @ s)).squeeze(1), (s,)
