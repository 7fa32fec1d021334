"""CAS-ViT's convolutional additive self-attention (Zhang et al., 2024), in 1-D."""
from __future__ import annotations

import torch
from torch import nn

from einsearch.ops.conv.common import depthwise_conv, depthwise_step
from einsearch.ops.registry import register


class GateOps(nn.Module):
    """CAS-ViT's SpatialOperation then ChannelOperation on one of q, k: (B, L, D) -> (B, L, D).

    Spatial: x1 = x * sigmoid(w^T ReLU(DWConv(x))), one gate per position. Channel:
    x2 = x1 * sigmoid(W mean(x1)), the mean over all positions (non-causal) or over positions <= t
    (causal, a prefix mean). CAS-ViT's BatchNorm after the DWConv is left out: it couples the
    examples of a batch, and at inference it is a per-channel affine map that the DWConv's weight
    and bias can express.
    """

    def __init__(self, dim: int, kernel: int):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, groups=dim)
        self.spatial = nn.Linear(dim, 1, bias=False)
        self.channel = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        x1 = x * torch.sigmoid(self.spatial(torch.relu(depthwise_conv(self.dwconv, x, causal))))
        if causal:
            count = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype)[:, None]  # (L, 1)
            mean = x1.cumsum(1) / count  # (B, L, D)
        else:
            mean = x1.mean(1, keepdim=True)  # (B, 1, D)
        return x1 * torch.sigmoid(self.channel(mean))

    def step(self, x_t: torch.Tensor, window: torch.Tensor, total: torch.Tensor, count: torch.Tensor):
        """Causal step: x_t (B, D); window (B, D, k-1); total (B, D) = sum of past x1; count (B, 1)."""
        conv, window = depthwise_step(self.dwconv, x_t, window)
        x1 = x_t * torch.sigmoid(self.spatial(torch.relu(conv)))
        total = total + x1
        return x1 * torch.sigmoid(self.channel(total / count)), window, total


@register(
    "cas_attention", category="attention", cost="L",
    hparams={"kernel": (3, 5, 7)},    # 4 conv windows (k-1 each) and 2 running sums per channel, plus a position counter
    state_size=lambda dim, seq_len, hp: 4 * dim * (hp["kernel"] - 1) + 2 * dim + 1,
)
class CASAttention(nn.Module):
    """out = proj(DWConv(Phi_q(q) + Phi_k(k)) * v), Phi = spatial then channel gate (see GateOps).

    Follows the official AdditiveTokenMixer: q, k, v from one bias-free linear map; `dwc` and the
    output `proj` are depthwise convolutions (proj is depthwise in CAS-ViT too; channels are mixed
    by the qkv map and the gates' linear maps). All convs have width `kernel` (CAS-ViT: 3x3).
    Causal form: causal (left-padded) depthwise convs and a prefix mean in the channel gate; it
    has an exact step form.
    """

    def __init__(self, dim: int, causal: bool = False, kernel: int = 3):
        super().__init__()
        self.causal = causal
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.gate_q = GateOps(dim, kernel)
        self.gate_k = GateOps(dim, kernel)
        self.dwc = nn.Conv1d(dim, dim, kernel, groups=dim)
        self.proj = nn.Conv1d(dim, dim, kernel, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        mixed = self.gate_q(q, self.causal) + self.gate_k(k, self.causal)
        return depthwise_conv(self.proj, depthwise_conv(self.dwc, mixed, self.causal) * v, self.causal)

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, ...]:
        """(4 conv windows (B, D, k-1): q gate, k gate, dwc, proj; 2 prefix sums (B, D); count (B, 1))."""
        w = self.dwc.weight
        device, dtype = device or w.device, dtype or w.dtype
        dim, k = w.shape[0], w.shape[-1]
        windows = tuple(torch.zeros(batch, dim, k - 1, device=device, dtype=dtype) for _ in range(4))
        sums = tuple(torch.zeros(batch, dim, device=device, dtype=dtype) for _ in range(2))
        return windows + sums + (torch.zeros(batch, 1, device=device, dtype=dtype),)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """x_t (B, D) -> y_t (B, D), new state; causal mode only."""
        win_q, win_k, win_dwc, win_proj, sum_q, sum_k, count = state
        count = count + 1
        q, k, v = self.qkv(x_t).chunk(3, dim=-1)
        q2, win_q, sum_q = self.gate_q.step(q, win_q, sum_q, count)
        k2, win_k, sum_k = self.gate_k.step(k, win_k, sum_k, count)
        mixed, win_dwc = depthwise_step(self.dwc, q2 + k2, win_dwc)
        y, win_proj = depthwise_step(self.proj, mixed * v, win_proj)
        return y, (win_q, win_k, win_dwc, win_proj, sum_q, sum_k, count)
