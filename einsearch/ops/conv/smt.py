"""SMT's Scale-Aware Modulation (Lin et al., 2023), in 1-D."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.conv.common import depthwise_conv, depthwise_step
from einsearch.ops.registry import register


def head_kernel(i: int) -> int:
    """Kernel width of head i: 3, 5, 7, ... (SMT's multi-head mixed convolution)."""
    return 3 + 2 * i


def _validate(dim: int, hp: dict) -> str | None:
    if dim % hp["heads"]:
        return f"heads={hp['heads']} must divide dim={dim}"
    return None


@register(
    "smt", category="convolution", cost="L",
    hparams={"heads": (2, 4), "expand": (1, 2)},    validate=_validate,
    # conv windows: head i keeps its last 2 + 2i inputs of D/heads channels -> D (heads + 1) in all
    state_size=lambda dim, seq_len, hp: dim * (hp["heads"] + 1),
    seq_flops=lambda dim, seq_len, hp: 2 * dim,  # GELU and the modulation s * v, per channel
)
class ScaleAwareModulation(nn.Module):
    """Scale-Aware Modulation of SMT (Lin et al., "Scale-Aware Modulation Meet Transformer", ICCV 2023).

    Following the official `Attention` with ca_attention=1: v = W_v x, s = W_s x (no biases);
    multi-head mixed convolution: s's channels are cut into `heads` contiguous heads and head i
    gets a depthwise conv of width 3 + 2i; scale-aware aggregation: channels are regrouped so
    that group j holds channel j of every head, a grouped point-wise map (D/heads groups,
    heads -> expand * heads each) mixes the scales, then GELU and a point-wise map back to D;
    out = proj(s_agg * v). SMT's BatchNorm after the grouped map is left out (it couples the
    examples of a batch; at inference it is an affine map the grouped map's bias can absorb).
    Causal form: every conv is left-padded, so position t sees t-k+1..t; exact step form.
    Non-causal: centred convs.
    """

    def __init__(self, dim: int, causal: bool = True, heads: int = 4, expand: int = 2):
        super().__init__()
        problem = _validate(dim, {"heads": heads})
        if problem:
            raise ValueError(f"smt: {problem}")
        self.causal, self.heads, self.expand = causal, heads, expand
        self.head_dim = dim // heads
        self.v = nn.Linear(dim, dim, bias=False)
        self.s = nn.Linear(dim, dim, bias=False)
        self.convs = nn.ModuleList(
            nn.Conv1d(self.head_dim, self.head_dim, head_kernel(i), groups=self.head_dim) for i in range(heads))
        # grouped point-wise map: group j (of D/heads) maps its `heads` inputs to expand*heads outputs
        out_per_group = expand * heads
        bound = 1 / math.sqrt(heads)  # nn.Conv1d's default init for a fan-in of `heads`
        self.agg_weight = nn.Parameter(torch.empty(self.head_dim, out_per_group, heads).uniform_(-bound, bound))
        self.agg_bias = nn.Parameter(torch.empty(self.head_dim, out_per_group).uniform_(-bound, bound))
        self.agg_out = nn.Linear(expand * dim, dim)
        self.proj = nn.Linear(dim, dim)

    def _modulate(self, mixed: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """mixed (..., D/heads, heads): conv outputs, [j, i] = channel j of head i -> out (..., D)."""
        agg = torch.einsum("...ji,jpi->...jp", mixed, self.agg_weight) + self.agg_bias  # (..., D/h, e*h)
        agg = self.agg_out(F.gelu(agg.flatten(-2)))  # (..., D)
        return self.proj(agg * v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        v, s = self.v(x), self.s(x)
        heads = s.split(self.head_dim, dim=-1)  # each (B, L, D/heads)
        mixed = torch.stack([depthwise_conv(conv, h, self.causal) for conv, h in zip(self.convs, heads)], dim=-1)
        return self._modulate(mixed, v)  # mixed: (B, L, D/heads, heads)

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, ...]:
        """One conv window per head: (B, D/heads, kernel_i - 1) zeros."""
        w = self.proj.weight
        device, dtype = device or w.device, dtype or w.dtype
        return tuple(torch.zeros(batch, self.head_dim, head_kernel(i) - 1, device=device, dtype=dtype)
                     for i in range(self.heads))

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """One causal step: x_t (B, D) -> y_t (B, D), new state."""
        v, s = self.v(x_t), self.s(x_t)
        outs, windows = [], []
        for conv, h, window in zip(self.convs, s.split(self.head_dim, dim=-1), state):
            y, window = depthwise_step(conv, h, window)
            outs.append(y)
            windows.append(window)
        return self._modulate(torch.stack(outs, dim=-1), v), tuple(windows)
