"""S4D (Gu et al., 2022): a diagonal linear SSM per channel, applied as a long convolution by FFT."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.conv.common import fft_causal_conv, fft_conv_flops
from einsearch.ops.recurrent.h3 import DiagSSMKernel
from einsearch.ops.registry import register


def fft_two_sided_conv(u: torch.Tensor, forward_kernel: torch.Tensor, backward_kernel: torch.Tensor) -> torch.Tensor:
    """y_t = sum_{s<=t} kf_{t-s} u_s + sum_{s>t} kb_{s-t-1} u_s, per channel, by one FFT of size 2L.

    u: (B, C, L); kernels (C, L). The combined kernel of length 2L holds kf at lags 0..L-1 and kb
    reversed at lags -1..-(L-1) (positions 2L-1 down to L+1), so the circular product of the FFT
    equals the two-sided linear convolution on the first L outputs.
    """
    length = u.shape[-1]
    n = 2 * length
    kernel = F.pad(forward_kernel, (0, length)) + F.pad(backward_kernel.flip(-1), (length, 0))  # (C, 2L)
    return torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(kernel, n=n), n=n)[..., :length]


def _seq_flops(dim: int, seq_len: int, hp: dict) -> int:
    # the FFT convolution, plus the kernel: d_state/2 complex powers per channel and lag (~8 real FLOPs each)
    return fft_conv_flops(dim, seq_len) + 4 * dim * hp["d_state"]


@register(
    "s4d", category="ssm", cost="L log L", exact_causal=False,
    hparams={"d_state": (16, 32, 64)},    # d_state/2 complex modes per channel = d_state real numbers
    state_size=lambda dim, seq_len, hp: dim * hp["d_state"], seq_flops=_seq_flops,
)
class S4D(nn.Module):
    """S4D layer: y = K * u + D u per channel, GELU, then a pointwise Linear(D, 2D) + GLU (as S4D).

    K_l = 2 Re(sum_m C'_m exp(dt A_m l)): S4D-Lin init A_m = -1/2 + i pi m, ZOH discretisation,
    learned log dt, d_state/2 modes standing for conjugate pairs (see conv_h3.DiagSSMKernel). The
    convolution runs by FFT with zero padding to 2L, so late inputs never wrap onto early outputs.
    Non-causal mode is bidirectional (as S4): a second kernel, over the inputs after t, is added.
    The step form (the complex diagonal recurrence) exists in causal mode only.
    """

    def __init__(self, dim: int, causal: bool = True, d_state: int = 64):
        super().__init__()
        if d_state < 2 or d_state % 2:
            raise ValueError(f"s4d: d_state must be an even number >= 2, got {d_state}")
        self.causal = causal
        self.kernel = DiagSSMKernel(dim, d_state)
        self.backward_kernel = None if causal else DiagSSMKernel(dim, d_state)
        self.skip = nn.Parameter(torch.randn(dim))
        self.out_proj = nn.Linear(dim, 2 * dim)

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        """SSM output (..., D) -> GELU, Linear to 2D, GLU -> (..., D)."""
        return F.glu(self.out_proj(F.gelu(y)), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        length = x.shape[1]
        u = x.transpose(1, 2)  # (B, D, L)
        if self.backward_kernel is None:
            y = fft_causal_conv(u, self.kernel(length))
        else:
            # the backward kernel's lag 0 is input t+1 (input t is the forward kernel's)
            y = fft_two_sided_conv(u, self.kernel(length), self.backward_kernel(length))
        return self._output((y + self.skip[:, None] * u).transpose(1, 2))

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor]:
        """(diagonal SSM state (B, D, d_state/2) complex zeros,)."""
        w = self.out_proj.weight
        device, dtype = device or w.device, dtype or w.dtype
        zeros = torch.zeros(batch, *self.kernel.c.shape[:2], device=device, dtype=dtype)
        return (torch.complex(zeros, zeros),)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        """One causal step: x_t (B, D) -> y_t (B, D), new state: s = exp(dt A) s + u_t, y = 2 Re(C' s) + D u."""
        if not self.causal:
            raise ValueError("s4d: the step form needs causal=True (the bidirectional form sees the future)")
        dt_a, c = self.kernel.discrete()  # (D, M) each
        s = torch.exp(dt_a) * state[0] + x_t.unsqueeze(-1)  # (B, D, M)
        y = 2 * (c * s).sum(-1).real + self.skip * x_t
        return self._output(y), (s,)
