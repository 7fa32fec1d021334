"""Linear attention (Katharopoulos et al., 2020) with elu+1, relu, identity or Based's Taylor map."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.common import merge_heads, split_heads
from einsearch.ops.recurrent.chunk import scalar_scan
from einsearch.ops.registry import register

FEATURES = ("elu", "relu", "identity", "taylor")
EPS = 1e-6  # keeps the normaliser away from 0 (relu features can all vanish)


def feature_map(x: torch.Tensor, kind: str) -> torch.Tensor:
    """phi(x) over the last axis. taylor: [1, x, x (x) x / sqrt(2)] on x / d^(1/4), so that
    phi(q).phi(k) = 1 + s + s^2/2 with s = q.k / sqrt(d), the 2nd-order Taylor series of exp(s)."""
    if kind == "elu":
        return F.elu(x) + 1
    if kind == "relu":
        return F.relu(x)
    if kind == "identity":
        return x
    x = x * x.shape[-1] ** -0.25
    outer = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2) * 2 ** -0.5
    return torch.cat([torch.ones_like(x[..., :1]), x, outer], dim=-1)


def key_dim(dim: int, heads: int, feature: str, feature_dim: int) -> int:
    """Per-head width of phi(q), phi(k)."""
    if feature == "taylor":
        return 1 + feature_dim + feature_dim ** 2
    return dim // heads


def _validate(dim: int, hp: dict) -> str | None:
    if dim % hp["heads"]:
        return f"heads={hp['heads']} must divide dim={dim}"
    if hp["normalize"] and hp["feature"] == "identity":
        return "normalize needs a positive feature map; identity features can give a zero denominator"
    return None


def _state_size(dim: int, seq_len: int, hp: dict) -> int:
    dv = dim // hp["heads"] + (1 if hp["normalize"] else 0)  # the normaliser's running sum of phi(k)
    return hp["heads"] * key_dim(dim, hp["heads"], hp["feature"], hp["feature_dim"]) * dv


def _seq_flops(dim: int, seq_len: int, hp: dict) -> int:
    heads, chunk = hp["heads"], hp["chunk"]
    dk, dv = key_dim(dim, heads, hp["feature"], hp["feature_dim"]), dim // heads
    # per token: intra-chunk scores and mixing (2 C (dk + dv)), state read and write (4 dk dv)
    return heads * (2 * chunk * (dk + dv) + 4 * dk * dv)


@register(
    "linear_attention", category="recurrent", cost="L",
    hparams={"heads": (1, 2, 4, 8), "feature": FEATURES, "normalize": (False, True),
             "feature_dim": (8, 16), "chunk": (16, 32, 64)},
    state_size=_state_size, seq_flops=_seq_flops, validate=_validate,
    compute_only=("chunk",),
)
class LinearAttention(nn.Module):
    """Multi-head linear attention: S_t = S_{t-1} + phi(k_t) v_t^T, o_t = S_t^T phi(q_t).

    Optionally normalised by phi(q_t).sum_{j<=t} phi(k_j) (+1e-6), carried as an extra value column.
    Feature maps: elu+1, relu, identity, or Based's 2nd-order Taylor map on q, k projected to
    `feature_dim` per head (ignored by the other maps, whose q, k keep the head width).
    Causal: chunked scan (prefix sums over chunks, no loop). Non-causal: global sums phi(K)^T V.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, feature: str = "elu",
                 normalize: bool = False, feature_dim: int = 16, chunk: int = 64):
        super().__init__()
        problem = _validate(dim, {"heads": heads, "normalize": normalize, "feature": feature})
        if problem or feature not in FEATURES:
            raise ValueError(f"linear_attention: {problem or f'unknown feature map {feature!r}'}")
        self.causal, self.heads, self.feature, self.normalize, self.chunk = causal, heads, feature, normalize, chunk
        qk_width = heads * feature_dim if feature == "taylor" else dim
        self.q_proj = nn.Linear(dim, qk_width, bias=False)
        self.k_proj = nn.Linear(dim, qk_width, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """phi(q), phi(k) (B, H, L, dk) and v (B, H, L, dv [+1 ones column when normalised])."""
        q = feature_map(split_heads(self.q_proj(x), self.heads), self.feature)
        k = feature_map(split_heads(self.k_proj(x), self.heads), self.feature)
        v = split_heads(self.v_proj(x), self.heads)
        if self.normalize:
            v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
        return q, k, v

    def _output(self, o: torch.Tensor) -> torch.Tensor:
        """(..., dv [+1]) per head -> projected output; divides by the normaliser column if any."""
        if self.normalize:
            o = o[..., :-1] / (o[..., -1:] + EPS)
        return o

    def scan(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        """Causal form: (B, L, D) -> (y (B, L, D), state (S,)) with S the state after the last token."""
        q, k, v = self._features(x)
        o, s = scalar_scan(q, k, v, None, self.chunk)
        return self.o_proj(merge_heads(self._output(o))), (s,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        if self.causal:
            return self.scan(x)[0]
        q, k, v = self._features(x)
        o = q @ (k.transpose(-1, -2) @ v)  # (B, H, L, dv): every token sees the global sums
        return self.o_proj(merge_heads(self._output(o)))

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor]:
        """(S (B, H, dk, dv [+1]),) zeros."""
        w = self.o_proj.weight
        dk = feature_map(w.new_zeros(1, self.q_proj.out_features // self.heads), self.feature).shape[-1]
        dv = w.shape[0] // self.heads + (1 if self.normalize else 0)
        return (torch.zeros(batch, self.heads, dk, dv, device=device or w.device, dtype=dtype or w.dtype),)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        """One causal step: x_t (B, D) -> y_t (B, D), new state."""
        q, k, v = self._features(x_t.unsqueeze(1))  # (B, H, 1, d)
        s = state[0] + k.transpose(-1, -2) @ v
        o = q @ s  # (B, H, 1, dv)
        return self.o_proj(merge_heads(self._output(o))).squeeze(1), (s,)
