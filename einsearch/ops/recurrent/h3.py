"""H3, "Hungry Hungry Hippos" (Fu et al., 2023): a shift SSM and a diagonal SSM around a gate."""
from __future__ import annotations

import math

import torch
from torch import nn

from einsearch.ops.conv.common import depthwise_conv, depthwise_step, fft_causal_conv, fft_conv_flops
from einsearch.ops.registry import register


class DiagSSMKernel(nn.Module):
    """S4D convolution kernel per channel: K_l = 2 Re(sum_m C'_m exp(dt A_m l)), ZOH, B folded into C.

    A_m = -exp(a_m) + i b_m with S4D-Lin init (-1/2 + i pi m); M = d_state / 2 modes, each standing
    for a conjugate pair (hence the factor 2 and the real part). C' = C (exp(dt A) - 1) / A.
    """

    def __init__(self, channels: int, d_state: int):
        super().__init__()
        modes = d_state // 2
        self.log_dt = nn.Parameter(torch.empty(channels).uniform_(math.log(1e-3), math.log(1e-1)))
        self.log_neg_a_real = nn.Parameter(torch.full((channels, modes), math.log(0.5)))
        self.a_imag = nn.Parameter(math.pi * torch.arange(modes, dtype=torch.float32).repeat(channels, 1))
        self.c = nn.Parameter(torch.randn(channels, modes, 2) * math.sqrt(0.5))

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(dt A (C, M) complex, C' (C, M) complex)."""
        a = torch.complex(-torch.exp(self.log_neg_a_real), self.a_imag)  # (C, M)
        dt_a = torch.exp(self.log_dt)[:, None] * a
        c = torch.view_as_complex(self.c.contiguous()) * (torch.exp(dt_a) - 1) / a
        return dt_a, c

    def forward(self, length: int) -> torch.Tensor:
        """The kernel (C, length).

        With lag l = i + s j (s about sqrt(L)), C'_m z_m^l = (C'_m z_m^i) (z_m^s)^j for z_m = exp(dt A_m):
        one batched complex product (C, s, M) @ (C, M, L/s) instead of exponentials of every
        (C, M, L) mode and lag. Each factor is an exponential of dt A times a lag, not a repeated
        product, so nothing accumulates rounding.
        """
        dt_a, c = self.discrete()  # (C, M) each
        step = max(1, math.isqrt(length))
        blocks = -(-length // step)
        real = self.log_dt.dtype
        near = torch.arange(step, device=dt_a.device, dtype=real)  # i
        far = torch.arange(blocks, device=dt_a.device, dtype=real) * step  # s j
        inner = (c[..., None] * torch.exp(dt_a[..., None] * near)).transpose(1, 2)  # (C, s, M)
        outer = torch.exp(dt_a[..., None] * far)  # (C, M, L/s)
        kernel = (inner @ outer).transpose(1, 2).reshape(len(c), -1)  # (C, L/s * s), lag i + s j
        return 2 * kernel[:, :length].real


def _state_size(dim: int, seq_len: int, hp: dict) -> int:
    # shift window (d_state - 1 inputs) + d_state/2 complex modes (d_state reals) per channel
    return dim * (hp["d_state"] - 1) + dim * hp["d_state"]


@register(
    "h3", category="ssm", cost="L log L", exact_causal=False,
    hparams={"d_state": (8, 16, 32, 64)},    state_size=_state_size, seq_flops=lambda dim, seq_len, hp: fft_conv_flops(dim, seq_len),
)
class H3(nn.Module):
    """y = W_o(q * diagSSM(shiftSSM(k) * v)), with q, k, v linear projections of x.

    The shift SSM (state N = d_state, A = shift matrix, B = e_1) is exactly a causal depthwise
    convolution of width N, implemented as one. The diagonal SSM is S4D (see DiagSSMKernel) plus a
    skip D, applied as a long convolution by FFT with zero padding to 2L (no circular wrap).
    Heads: H3's default head_dim = 1 (elementwise gating) is implemented; multi-dim heads are not.
    H3 is causal; with causal=False it runs the same causal form. Step form: the shift window and
    the complex diagonal state, exactly the recurrence whose kernel the forward convolves with.
    """

    def __init__(self, dim: int, causal: bool = True, d_state: int = 16):
        super().__init__()
        if d_state < 2 or d_state % 2:
            raise ValueError(f"h3: d_state must be an even number >= 2, got {d_state}")
        self.causal = causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.shift = nn.Conv1d(dim, dim, d_state, groups=dim, bias=False)
        self.ssm = DiagSSMKernel(dim, d_state)
        self.skip = nn.Parameter(torch.randn(dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        kv = depthwise_conv(self.shift, k, causal=True) * v  # (B, L, D)
        ssm = fft_causal_conv(kv.transpose(1, 2), self.ssm(x.shape[1])).transpose(1, 2)
        return self.out_proj(q * (ssm + self.skip * kv))

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(shift window (B, D, N-1), diagonal SSM state (B, D, N/2) complex)."""
        w = self.out_proj.weight
        device, dtype = device or w.device, dtype or w.dtype
        dim, n = w.shape[0], self.shift.kernel_size[0]
        zeros = torch.zeros(batch, dim, n // 2, device=device, dtype=dtype)
        return (torch.zeros(batch, dim, n - 1, device=device, dtype=dtype), torch.complex(zeros, zeros))

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """x_t (B, D) -> y_t (B, D), new state."""
        window, s = state
        q, k, v = self.qkv(x_t).chunk(3, dim=-1)
        k_shift, window = depthwise_step(self.shift, k, window)
        kv = k_shift * v  # (B, D)
        dt_a, c = self.ssm.discrete()
        s = torch.exp(dt_a) * s + kv.unsqueeze(-1)  # (B, D, M)
        ssm = 2 * (c * s).sum(-1).real
        return self.out_proj(q * (ssm + self.skip * kv)), (window, s)
