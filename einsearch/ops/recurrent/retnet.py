"""Retention (RetNet, Sun et al., 2023): linear attention with a fixed decay per head."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.common import apply_rotary, merge_heads, rotary_tables, split_heads
from einsearch.ops.recurrent.chunk import scalar_scan
from einsearch.ops.registry import register


def rotary_at(pos: torch.Tensor, dim: int, base: float = 10000.0, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (B, dim/2) at integer positions pos (B,), computed as common.rotary_tables does."""
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, device=pos.device, dtype=torch.float64) / dim))
    angles = pos.to(torch.float64)[:, None] * inv[None, :]
    dtype = dtype or torch.get_default_dtype()
    return angles.cos().to(dtype), angles.sin().to(dtype)


def _validate(dim: int, hp: dict) -> str | None:
    if dim % hp["heads"] or (dim // hp["heads"]) % 2:
        return f"heads={hp['heads']} must divide dim={dim} into even head widths (rotary)"
    return None


def _seq_flops(dim: int, seq_len: int, hp: dict) -> int:
    d = dim // hp["heads"]
    return hp["heads"] * (4 * hp["chunk"] * d + 4 * d * d)


@register(
    "retnet", category="recurrent", cost="L",
    hparams={"heads": (1, 2, 4, 8), "chunk": (16, 32, 64)},
    state_size=lambda dim, seq_len, hp: dim * dim // hp["heads"], seq_flops=_seq_flops, validate=_validate,
    compute_only=("chunk",),
)
class RetNet(nn.Module):
    """Multi-scale retention: S_t = gamma_h S_{t-1} + k_t v_t^T, o_t = S_t^T q_t, gamma_h = 1 - 2^(-5-h).

    q, k get rotary positions (plain RoPE: the "xPos-lite" variant, without xPos's extra scale), k is
    scaled by d^-1/2; each head's output is group-normed, gated by swish(W_g x), then projected.
    Retention is a recurrence: with causal=False it runs the same causal form. The decoding state
    carries the position (for the rotary angles) next to S.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, chunk: int = 32):
        super().__init__()
        problem = _validate(dim, {"heads": heads})
        if problem:
            raise ValueError(f"retnet: {problem}")
        self.causal, self.heads, self.chunk = causal, heads, chunk
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.g_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)
        self.norm = nn.GroupNorm(heads, dim)  # one group per head, applied per token
        log_gamma = torch.tensor([math.log(1 - 2.0 ** (-5 - h)) for h in range(heads)])
        self.register_buffer("log_gamma", log_gamma, persistent=False)  # (H,)

    def _qkv(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """(B, L, D) -> q, k, v (B, H, L, d), rotary applied with tables (L or B-broadcast, d/2)."""
        d = x.shape[-1] // self.heads
        q = apply_rotary(split_heads(self.q_proj(x), self.heads), cos, sin)
        k = apply_rotary(split_heads(self.k_proj(x), self.heads), cos, sin) * d ** -0.5
        return q, k, split_heads(self.v_proj(x), self.heads)

    def _output(self, x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """x (B, L, D), o (B, H, L, d) -> gated, normed, projected (B, L, D)."""
        o = merge_heads(o)
        o = self.norm(o.flatten(0, 1)).view_as(o)
        return self.o_proj(F.silu(self.g_proj(x)) * o)

    def scan(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """(B, L, D) -> (y, (S (B, H, d, d), position (B,))) after the last token."""
        b, length, dim = x.shape
        cos, sin = rotary_tables(length, dim // self.heads, device=x.device, dtype=x.dtype)
        q, k, v = self._qkv(x, cos, sin)
        log_decay = self.log_gamma.to(x.dtype)[None, :, None].expand(1, -1, length)  # (1, H, L): shared by the batch
        o, s = scalar_scan(q, k, v, log_decay, self.chunk)
        return self._output(x, o), (s, torch.full((b,), length, dtype=torch.long, device=x.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        return self.scan(x)[0]

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(S (B, H, d, d) zeros, position (B,) zeros)."""
        w = self.o_proj.weight
        device, dtype = device or w.device, dtype or w.dtype
        d = w.shape[0] // self.heads
        return (torch.zeros(batch, self.heads, d, d, device=device, dtype=dtype),
                torch.zeros(batch, dtype=torch.long, device=device))

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """One causal step: x_t (B, D) -> y_t (B, D), new state."""
        s, pos = state
        cos, sin = rotary_at(pos, x_t.shape[-1] // self.heads, dtype=x_t.dtype)  # (B, d/2)
        q, k, v = self._qkv(x_t.unsqueeze(1), cos[:, None, None], sin[:, None, None])  # (B, H, 1, d)
        s = self.log_gamma.to(s.dtype).exp()[:, None, None] * s + k.transpose(-1, -2) @ v
        return self._output(x_t.unsqueeze(1), q @ s).squeeze(1), (s, pos + 1)
