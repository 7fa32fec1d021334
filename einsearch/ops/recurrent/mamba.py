"""Mamba (Gu & Dao, 2023): the S6 selective SSM block, with a chunked scan."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.conv.common import depthwise_step
from einsearch.ops.registry import register
from einsearch.ops.recurrent.ssm_common import conv_with_window, dt_bias_init
from einsearch.ops.kernels.loader import accelerated
from einsearch.ops.recurrent.selective_scan import MIN_LOG_DECAY, SelectiveScan, scan_forward
from einsearch.ops.kernels.selective_scan import selective_scan_cpu

D_CONV = 4
# the per-step log decay floor MIN_LOG_DECAY = -8 (ssm_selective_scan) lets a chunk of at most 8 steps
# have exp(-cumulative log decay) <= e^64 (float32 overflows near e^88)
MAX_CHUNK_SPAN = 64.0


def _linear_scan(decay: torch.Tensor, inp: torch.Tensor) -> torch.Tensor:
    """h_t = decay_t h_{t-1} + inp_t from h_{-1} = 0, along dim 1 of (B, c, ...) tensors.

    Hillis-Steele doubling (used by ssm_mass; Mamba's own scan is selective_scan): after the step with offset k, (decay_t, inp_t) stand for the steps
    t-2k+1..t composed. log2(c) steps, each elementwise over the chunk; only products of decays
    (<= 1) appear, so nothing overflows whatever dt is.
    """
    length, offset = inp.shape[1], 1
    while offset < length:
        inp = torch.cat([inp[:, :offset], inp[:, offset:] + decay[:, offset:] * inp[:, :-offset]], dim=1)
        if 2 * offset < length:
            decay = torch.cat([decay[:, :offset], decay[:, offset:] * decay[:, :-offset]], dim=1)
        offset *= 2
    return inp


@accelerated(selective_scan_cpu)
def selective_scan(u: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   h: torch.Tensor, chunk: int, D: torch.Tensor | None = None,
                   z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """S6: h_t = exp(a_t) h_{t-1} + dt_t B_t u_t per channel, a_t = max(dt_t A, MIN_LOG_DECAY), y_t = C_t^T h_t,
    then (y_t + D u_t) silu(z_t) (Mamba's skip and gate; each left out where None).

    u, dt, z (B, L, Di); A (Di, N); D (Di,); B, C (B, L, N); h (B, Di, N), the state before the first
    token. Returns the output (B, L, Di) and the final state (B, Di, N). On a CPU, a compiled C kernel
    runs it all (ssm_selective_scan_cpu; where it cannot be built, the PyTorch form below). The
    PyTorch form, for GPUs and under tracing, torch.export and torch.compile, is ssm_selective_scan:
    a loop over chunks of `chunk` positions carries h; inside a chunk, with p_t the cumulative decay,
    h_t = p_t (h + sum_{s<=t} b_s / p_s), cumulative sums as products with a triangular matrix of
    ones (no loop over positions); the floor bounds 1 / p_s <= e^(chunk |MIN_LOG_DECAY|) <= e^64
    (MAX_CHUNK_SPAN), finite in float32. For training a custom autograd Function saves only the
    inputs and the state at each chunk start and recomputes a chunk's states in the backward pass
    (memory: 1/chunk of the state history). Without gradients the same forward runs in reused
    buffers; under torch.export with gradients, in plain ops (which autograd and export trace).
    """
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (u, dt, A, B, C, h))
    if needs_grad and not torch.compiler.is_exporting():
        y, h = SelectiveScan.apply(u, dt, A, B, C, h, chunk, MIN_LOG_DECAY)
    else:
        y, h = scan_forward(u, dt, A, B, C, h, chunk, MIN_LOG_DECAY, inplace=not needs_grad)[:2]
    if D is not None:
        y = y + D * u
    return (y if z is None else y * F.silu(z)), h


def _state_size(dim: int, seq_len: int, hp: dict) -> int:
    d_inner = hp["expand"] * dim
    return d_inner * hp["d_state"] + d_inner * (D_CONV - 1)  # SSM state + conv window


def _seq_flops(dim: int, seq_len: int, hp: dict) -> int:
    d_inner, n = hp["expand"] * dim, hp["d_state"]
    # per token and state: exp(dt A), dt B u, the update (2), and C^T h (2)
    return 7 * d_inner * n


@register(
    "mamba", category="ssm", cost="L",
    hparams={"d_state": (4, 8, 16), "expand": (1, 2), "chunk": (4, 8)},
    state_size=_state_size, seq_flops=_seq_flops,
    compute_only=("chunk",),
)
class Mamba(nn.Module):
    """Mamba-1 block: in_proj -> (x, z); causal depthwise conv (d_conv 4) + SiLU on x;
    x_proj -> (dt, B, C) with dt_rank = ceil(D/16); dt = softplus(dt_proj(dt) + bias);
    selective SSM with A = -exp(A_log) (init -(1..N) per channel) and skip D; times SiLU(z); out_proj.
    One deviation: the per-step log decay dt A is floored at MIN_LOG_DECAY = -8 (a step forgets at
    most all but e^-8 = 3.4e-4 of the state; at init dt A >= -1.6, so the floor is inactive), in the
    chunked scan and in `step` alike, which keeps the chunked form finite in float32.

    The training path is selective_scan: on a CPU a compiled kernel (about 10 ms forward and 20-30 ms
    backward at B=8, L=1024, Di=256, N=16 on 2 cores: bench/RESULTS.md), elsewhere the chunked
    PyTorch form.
    Mamba is a recurrence: with causal=False it runs the same causal form.
    """

    def __init__(self, dim: int, causal: bool = True, d_state: int = 16, expand: int = 2, chunk: int = 8):
        super().__init__()
        if chunk < 1 or chunk * -MIN_LOG_DECAY > MAX_CHUNK_SPAN:
            raise ValueError(f"mamba: chunk must be in 1..{int(MAX_CHUNK_SPAN / -MIN_LOG_DECAY)}, got {chunk}")
        self.causal, self.chunk, self.d_state = causal, chunk, d_state
        self.d_inner = expand * dim
        self.dt_rank = math.ceil(dim / 16)
        self.in_proj = nn.Linear(dim, 2 * self.d_inner, bias=False)
        self.conv = nn.Conv1d(self.d_inner, self.d_inner, D_CONV, groups=self.d_inner)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner)
        with torch.no_grad():  # Mamba's dt init: weights ~ U(+-rank^-1/2), bias = softplus^-1(dt)
            self.dt_proj.weight.uniform_(-self.dt_rank ** -0.5, self.dt_rank ** -0.5)
            self.dt_proj.bias.copy_(dt_bias_init(self.d_inner))
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)  # (Di, N)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, dim, bias=False)

    def _ssm_inputs(self, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Conv output xs (..., Di) -> dt (..., Di), B (..., N), C (..., N)."""
        dt, B, C = self.x_proj(xs).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        return F.softplus(self.dt_proj(dt)), B, C

    def scan(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        """(B, L, D) -> (y (B, L, D), state after the last token: (h (B, Di, N), conv window))."""
        xs, z = self.in_proj(x).chunk(2, dim=-1)  # (B, L, Di) each
        h, window = (None, None) if state is None else state
        xs, window = conv_with_window(self.conv, xs, window, silu=True)
        dt, B, C = self._ssm_inputs(xs)
        if h is None:
            h = x.new_zeros(x.shape[0], self.d_inner, self.d_state)
        y, h = selective_scan(xs, dt, -torch.exp(self.A_log), B, C, h, self.chunk, self.D, z)
        return self.out_proj(y), (h, window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        return self.scan(x)[0]

    def init_state(self, batch: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(h (B, Di, N) zeros, conv window (B, Di, d_conv - 1) zeros)."""
        w = self.out_proj.weight
        device, dtype = device or w.device, dtype or w.dtype
        return (torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=dtype),
                torch.zeros(batch, self.d_inner, D_CONV - 1, device=device, dtype=dtype))

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """One causal step: x_t (B, D) -> y_t (B, D), new state."""
        h, window = state
        xs, z = self.in_proj(x_t).chunk(2, dim=-1)  # (B, Di)
        xs, window = depthwise_step(self.conv, xs, window)
        xs = F.silu(xs)
        dt, B, C = self._ssm_inputs(xs)
        decay = torch.exp((dt.unsqueeze(-1) * -torch.exp(self.A_log)).clamp(min=MIN_LOG_DECAY))  # (B, Di, N)
        h = decay * h + (dt * xs).unsqueeze(-1) * B.unsqueeze(1)
        y = (h @ C.unsqueeze(-1)).squeeze(-1)  # (B, Di)
        return self.out_proj((y + self.D * xs) * F.silu(z)), (h, window)
