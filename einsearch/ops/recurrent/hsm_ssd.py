"""EfficientViM's Hidden State Mixer SSD (Lee et al., 2025): the channel mixing of an SSD layer
applied to its small hidden state (N x D) instead of the L x D sequence."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.conv.common import depthwise_conv, depthwise_step
from einsearch.ops.recurrent.chunk import scalar_scan
from einsearch.ops.registry import register

D_CONV = 3  # EfficientViM's 3x3 depthwise conv over (B, C, dt), in 1-D
CHUNK = 64


def _state_size(dim: int, seq_len: int, hp: dict) -> int:
    n = hp["state_dim"]
    return n * (dim + 1) + n + 3 * n * (D_CONV - 1)  # weighted sums and normaliser, running max, conv


def _seq_flops(dim: int, seq_len: int, hp: dict) -> int:
    n = hp["state_dim"]
    # Counted for the causal form (seq_flops does not see the mode): the mixing maps (3 D^2 weights)
    # run on N prefix states per token, N - 1 times more than the weight count assumes; plus the
    # state update and normalisation (~5 N D) and the read-out with C (2 N D).
    return 6 * (n - 1) * dim * dim + 7 * n * dim


@register(
    "hsm_ssd", category="ssm", cost="L",
    hparams={"state_dim": (4, 8, 16)},    state_size=_state_size, seq_flops=_seq_flops,
)
class HSMSSD(nn.Module):
    """HSM-SSD of EfficientViM (Lee et al., "EfficientViM: Efficient Vision Mamba with Hidden
    State Mixer based State Space Duality", CVPR 2025), following the official HSMSSD module.

    (B, C, dt) = DWConv_3(W x), N channels each; per state n, weights a_{n,s} = softmax over
    positions s of dt_{n,s}; the reduced hidden state h[n] = sum_s a_{n,s} B_{n,s} x_s (N x D);
    the hidden state mixer: (h', z) = W_hz h, h = W_out(h' * SiLU(z) + D h'), all on N x D;
    y_t = sum_n C_{n,t} h[n]. The official code writes softmax(dt + A) with A per state, but A
    is constant over the softmax's axis and cancels (it gets no gradient), so it is left out.
    Non-causal (EfficientViM's form): one hidden state from the whole sequence, mixed once.
    Causal: the hidden state of position t summarises positions <= t only (a softmax over the
    prefix: a running sum rescaled by the running max of dt, i.e. a scan with decay
    exp(m_{t-1} - m_t) <= 1, computed chunked by rec_chunk.scalar_scan), and the mixer runs on
    every position's prefix state, so the causal form costs N times the per-token channel
    mixing the non-causal form saves; it has an exact step form. The conv is left-padded.
    """

    def __init__(self, dim: int, causal: bool = True, state_dim: int = 8):
        super().__init__()
        self.causal, self.state_dim = causal, state_dim
        self.bcdt_proj = nn.Linear(dim, 3 * state_dim, bias=False)
        self.conv = nn.Conv1d(3 * state_dim, 3 * state_dim, D_CONV, groups=3 * state_dim, bias=False)
        self.hz_proj = nn.Linear(dim, 2 * dim, bias=False)
        self.out_proj = nn.Linear(dim, dim, bias=False)
        self.D = nn.Parameter(torch.ones(1))

    def mix(self, h: torch.Tensor) -> torch.Tensor:
        """The hidden state mixer on states h (..., N, D) -> (..., N, D)."""
        h, z = self.hz_proj(h).chunk(2, dim=-1)
        return self.out_proj(h * F.silu(z) + h * self.D)

    def prefix_states(self, x: torch.Tensor, B: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        """Causal hidden states h_t[n] = sum_{s<=t} softmax_{s<=t}(dt_n)_s B_{n,s} x_s: (B, L, N, D).

        With m_t the running max of dt, the numerator and normaliser scaled by exp(-m_t) obey
        S_t = exp(m_{t-1} - m_t) S_{t-1} + exp(dt_t - m_t) [B_t x_t, 1]: every factor is <= 1,
        and the normaliser is >= 1 (the term at the running max contributes 1).
        """
        b, length, dim = x.shape
        m = dt.cummax(dim=1).values  # (B, L, N)
        log_decay = (torch.cat([m[:, :1], m[:, :-1]], dim=1) - m).transpose(1, 2)  # (B, N, L), <= 0
        k = torch.exp(dt - m).transpose(1, 2).unsqueeze(-1)  # (B, N, L, 1)
        v = torch.cat([B.unsqueeze(-1) * x.unsqueeze(2), x.new_ones(b, length, self.state_dim, 1)], dim=-1)
        o, _ = scalar_scan(torch.ones_like(k), k, v.transpose(1, 2), log_decay, CHUNK)  # (B, N, L, D+1)
        return (o[..., :dim] / o[..., dim:]).transpose(1, 2)  # (B, L, N, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        B, C, dt = depthwise_conv(self.conv, self.bcdt_proj(x), self.causal).chunk(3, dim=-1)  # (B, L, N)
        if self.causal:
            h = self.mix(self.prefix_states(x, B, dt))  # (B, L, N, D)
            return torch.einsum("blnd,bln->bld", h, C)
        weights = dt.softmax(dim=1) * B  # (B, L, N): softmax over positions
        h = self.mix(torch.einsum("bln,bld->bnd", weights, x))  # (B, N, D)
        return torch.einsum("bnd,bln->bld", h, C)

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, ...]:
        """(scaled sums [B x, 1] (B, N, D+1) zeros, running max (B, N) at -inf, conv window (B, 3N, 2))."""
        w = self.out_proj.weight
        device, dtype = device or w.device, dtype or w.dtype
        n, dim = self.state_dim, w.shape[0]
        return (torch.zeros(batch, n, dim + 1, device=device, dtype=dtype),
                torch.full((batch, n), float("-inf"), device=device, dtype=dtype),
                torch.zeros(batch, 3 * n, D_CONV - 1, device=device, dtype=dtype))

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """One causal step: x_t (B, D) -> y_t (B, D), new state."""
        sums, m, window = state
        bcdt, window = depthwise_step(self.conv, self.bcdt_proj(x_t), window)
        B, C, dt = bcdt.chunk(3, dim=-1)  # (B, N)
        m_new = torch.maximum(m, dt)
        fresh = torch.cat([B.unsqueeze(-1) * x_t.unsqueeze(1), torch.ones_like(B).unsqueeze(-1)], dim=-1)
        sums = torch.exp(m - m_new).unsqueeze(-1) * sums + torch.exp(dt - m_new).unsqueeze(-1) * fresh
        h = self.mix(sums[..., :-1] / sums[..., -1:])  # (B, N, D)
        return torch.einsum("bnd,bn->bd", h, C), (sums, m_new, window)
