"""A2Mamba's multi-scale attention-augmented SSM (MASS, Lou et al., 2025), in 1-D."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.common import apply_rotary, rotary_tables
from einsearch.ops.conv.common import depthwise_conv
from einsearch.ops.registry import register
from einsearch.ops.recurrent.ssm_common import dt_bias_init
from einsearch.ops.recurrent.mamba import _linear_scan

D_CONV = 5  # A2Mamba's depthwise convs (lepe, and the SSM's input conv) are 5 wide
SCAN_CHUNK = 16


def _validate(dim: int, hp: dict) -> str | None:
    heads = hp["heads"]
    if dim % heads or (dim // heads) % 2:
        return f"heads={heads} must divide dim={dim} into even head widths (rotary embedding)"
    return None


def window_index(length: int, window: int, dilation: int, causal: bool, device=None):
    """Key positions of every query (L, window) and which are inside the sequence.

    Causal: t - dilation*(window-1), ..., t - dilation, t. Non-causal: centred on t, taps
    t + dilation*(j - (window-1)//2). Out-of-range taps are masked (their index is clamped)."""
    t = torch.arange(length, device=device)[:, None]
    j = torch.arange(window, device=device)[None, :]
    offset = (j - (window - 1)) if causal else (j - (window - 1) // 2)
    idx = t + dilation * offset  # (L, w)
    valid = (idx >= 0) & (idx < length)
    return idx.clamp(0, length - 1), valid


def state_scan(u: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Every hidden state of S6: h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t, from h_{-1} = 0.

    u, dt (B, L, D); A (D, N); B (B, L, N) -> h (B, L, D, N). Chunks of SCAN_CHUNK positions, a
    doubling scan inside each (ssm_mamba's), the last state carried to the next chunk."""
    states, h = [], None
    for u_c, dt_c, B_c in zip(u.split(SCAN_CHUNK, 1), dt.split(SCAN_CHUNK, 1), B.split(SCAN_CHUNK, 1)):
        decay = torch.exp(dt_c.unsqueeze(-1) * A)  # (B, c, D, N)
        inp = (dt_c * u_c).unsqueeze(-1) * B_c.unsqueeze(2)  # (B, c, D, N)
        if h is not None:
            inp = torch.cat([inp[:, :1] + decay[:, :1] * h.unsqueeze(1), inp[:, 1:]], dim=1)
        hs = _linear_scan(decay, inp)
        states.append(hs)
        h = hs[:, -1]
    return torch.cat(states, dim=1)


def _window_attention(q: torch.Tensor, k: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Softmax weights over each query's window: q, k (B, h, L, d); idx, valid (L, w) -> (B, h, L, w)."""
    logits = torch.einsum("bhld,bhlwd->bhlw", q, k[:, :, idx])
    return logits.masked_fill(~valid, float("-inf")).softmax(-1)


def _aggregate(attn: torch.Tensor, v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """sum_w attn[..., l, w] v[..., idx[l, w], :]: attn (B, h, L, w), v (B, h, L, d) -> (B, h, L, d)."""
    return torch.einsum("bhlw,bhlwd->bhld", attn, v[:, :, idx])


def _state_size(dim: int, seq_len: int, hp: dict) -> int:
    w, n = hp["window"], hp["d_state"]
    span = w * (w - 1) + 1  # the dilated window reaches back (w - 1) * w positions
    return span * (2 * dim + dim * n) + dim * n + 2 * dim * (D_CONV - 1)


def _seq_flops(dim: int, seq_len: int, hp: dict) -> int:
    w, n, heads = hp["window"], hp["d_state"], hp["heads"]
    # window scores and sums (4 w D), the same weights on the states (2 w D N), the scan (7 D N),
    # the read-out (2 D N), the head-fusion map applied D N / heads times per token
    return 4 * w * dim + 2 * w * dim * n + 9 * dim * n + 2 * heads * dim * n


@register(
    "mass", category="ssm", cost="L",
    hparams={"heads": (2, 4), "window": (4, 8), "d_state": (1, 4)},
    validate=_validate, state_size=_state_size, seq_flops=_seq_flops,
)
class MASS(nn.Module):
    """Multi-scale attention-augmented SSM of A2Mamba (Lou et al., "A2Mamba: Attention-augmented
    State Space Models for Visual Recognition", 2025), 1-D form of the official Attention + A2SSM.

    q, k, v = W x (heads; rotary q, k). Multi-scale attention: the first half of the heads attends
    within a local window of `window` taps, the second half within a dilated window (dilation =
    window, so it spans window^2 positions): v1 = A1 v1, v2 = A2 (v1 + v2). The SSM (S6 with
    expand 1, dt rank ceil(D/16)) runs on u = SiLU(DWConv(v1, v2)); its hidden states h_t (D x N
    per position) are aggregated across positions by the same attention maps (channels of head i
    with head i's map), fused across heads by a learned heads x heads map, and read out:
    y_t = sum_n C_{t,n} h~_t[:, n] + D u_t. Then LN(y) + DWConv(v) (LePE), times SiLU(W_g x),
    and an output LN + linear. A2Mamba's BatchNorm in the gate is left out (it couples a batch);
    its dilation min(H/w, w) becomes the fixed w so the function does not depend on L; windows
    at the ends are truncated (masked) instead of shifted inward as NATTEN does.
    Causal: both windows cover past positions only and every conv is left-padded (the scan is
    causal). Non-causal: centred windows and convs; the scan still runs forward, as in A2Mamba.
    No step form (decoding would keep window^2 past keys, values and states).
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 2, window: int = 8, d_state: int = 1):
        super().__init__()
        problem = _validate(dim, {"heads": heads})
        if problem:
            raise ValueError(f"mass: {problem}")
        self.causal, self.heads, self.window, self.d_state = causal, heads, window, d_state
        self.head_dim = dim // heads
        self.dt_rank = math.ceil(dim / 16)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.gate = nn.Linear(dim, dim)
        self.lepe = nn.Conv1d(dim, dim, D_CONV, groups=dim)
        self.conv = nn.Conv1d(dim, dim, D_CONV, groups=dim)
        self.x_proj = nn.Linear(dim, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, dim)
        with torch.no_grad():  # Mamba's dt init
            self.dt_proj.weight.uniform_(-self.dt_rank ** -0.5, self.dt_rank ** -0.5)
            self.dt_proj.bias.copy_(dt_bias_init(dim))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32).repeat(dim, 1)))
        self.D = nn.Parameter(torch.ones(dim))
        self.state_fusion = nn.Linear(heads, heads)
        self.norm = nn.LayerNorm(dim)
        self.out_norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim)

    def attention_maps(self, x: torch.Tensor):
        """q, k, v from x (B, L, D) -> (A1, idx1, valid1), (A2, idx2, valid2), v (B, heads, L, hd)."""
        b, length, dim = x.shape
        q, k, v = (t.view(b, length, self.heads, self.head_dim).transpose(1, 2)
                   for t in self.qkv(x).chunk(3, dim=-1))  # (B, H, L, hd)
        cos, sin = rotary_tables(length, self.head_dim, device=x.device, dtype=x.dtype)
        q, k = apply_rotary(q, cos, sin) * self.head_dim ** -0.5, apply_rotary(k, cos, sin)
        half = self.heads // 2
        local = window_index(length, self.window, 1, self.causal, x.device)
        dilated = window_index(length, self.window, self.window, self.causal, x.device)
        a1 = _window_attention(q[:, :half], k[:, :half], *local)
        a2 = _window_attention(q[:, half:], k[:, half:], *dilated)
        return (a1, *local), (a2, *dilated), v

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        b, length, dim = x.shape
        (a1, idx1, _), (a2, idx2, _), v = self.attention_maps(x)
        half = self.heads // 2
        v1 = _aggregate(a1, v[:, :half], idx1)
        v2 = _aggregate(a2, v1 + v[:, half:], idx2)
        attended = torch.cat([v1, v2], dim=1).transpose(1, 2).reshape(b, length, dim)
        lepe = depthwise_conv(self.lepe, v.transpose(1, 2).reshape(b, length, dim), self.causal)
        # the attention-augmented SSM on the attention output
        u = F.silu(depthwise_conv(self.conv, attended, self.causal))  # (B, L, D)
        dt, B, C = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(dt))  # (B, L, D)
        h = state_scan(u, dt, -torch.exp(self.A_log), B)  # (B, L, D, N)
        h = h.reshape(b, length, self.heads, self.head_dim * self.d_state).transpose(1, 2)  # (B, H, L, hd N)
        h = torch.cat([_aggregate(a1, h[:, :half], idx1), _aggregate(a2, h[:, half:], idx2)], dim=1)
        h = self.state_fusion(h.movedim(1, -1))  # (B, L, hd N, H): heads mixed
        h = h.movedim(-1, 2).reshape(b, length, dim, self.d_state)  # (B, L, D, N)
        y = (h @ C.unsqueeze(-1)).squeeze(-1) + self.D * u  # (B, L, D)
        y = (self.norm(y) + lepe) * F.silu(self.gate(x))
        return self.proj(self.out_norm(y))
