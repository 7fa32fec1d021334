"""Helpers shared by the convolution primitives: FFT long convolution, depthwise conv steps,
and the implicit (MLP-generated) long filter of Hyena / BaseConv. Not primitives themselves."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.kernels.depthwise_conv import depthwise_conv_cpu, depthwise_valid_cpu
from einsearch.ops.kernels.loader import accelerated


def fft_causal_conv(u: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Causal convolution y_t = sum_{s=0..t} kernel_s u_{t-s}, per channel, by FFT.

    u: (B, C, L); kernel: (C, L). Both are zero-padded to 2L, so the circular product of the FFT
    equals the linear convolution on the first L outputs (no wrap of late inputs onto early outputs).
    FFT rounding spreads ~1 ulp of every input over every output: causal up to rounding, not bitwise.
    """
    length = u.shape[-1]
    n = 2 * length
    u_f = torch.fft.rfft(u, n=n)  # (B, C, L+1) complex
    k_f = torch.fft.rfft(kernel, n=n)  # (C, L+1)
    return torch.fft.irfft(u_f * k_f, n=n)[..., :length]  # (B, C, L)


def depthwise_step(conv: nn.Conv1d, x_t: torch.Tensor, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One causal step of a depthwise Conv1d (groups=C) of kernel k.

    x_t: (B, C); window: (B, C, k-1), the previous k-1 inputs, oldest first.
    Returns y_t (B, C) and the updated window.
    """
    full = torch.cat([window, x_t.unsqueeze(-1)], dim=-1)  # (B, C, k)
    y = (full * conv.weight.squeeze(1)).sum(-1)
    if conv.bias is not None:
        y = y + conv.bias
    return y, full[..., 1:]


@accelerated(depthwise_valid_cpu)
def depthwise_valid(conv: nn.Conv1d, padded: torch.Tensor, silu: bool = False) -> torch.Tensor:
    """The depthwise Conv1d `conv` (groups=C, kernel k) over positions, no padding:
    padded (B, L + k - 1, C) -> (B, L, C); with silu, SiLU of it.

    Computed as k shifted multiply-adds in the (B, L, C) layout (a loop over the kernel's taps): no
    transposes, and faster than Conv1d forward+backward, whose depthwise backward is slow. On a CPU
    a compiled kernel runs it instead, in one pass (conv_depthwise_cpu).
    """
    k = conv.kernel_size[0]
    length = padded.shape[1] - k + 1
    weight = conv.weight.squeeze(1)  # (C, k)
    y = padded[:, :length] * weight[:, 0]
    if conv.bias is not None:
        y = y + conv.bias
    for tap in range(1, k):
        y = torch.addcmul(y, padded[:, tap:tap + length], weight[:, tap])
    return F.silu(y) if silu else y


@accelerated(depthwise_conv_cpu)
def depthwise_conv(conv: nn.Conv1d, x: torch.Tensor, causal: bool, silu: bool = False) -> torch.Tensor:
    """Depthwise conv over positions of x (B, L, C) -> (B, L, C); causal = left pad k-1, else centred.
    With silu, SiLU of it. On a CPU a compiled kernel runs it, padding included (conv_depthwise_cpu)."""
    k = conv.kernel_size[0]
    pad = (k - 1, 0) if causal else ((k - 1) // 2, k // 2)
    return depthwise_valid(conv, F.pad(x, (0, 0, *pad)), silu)


class Sin(nn.Module):
    """sin(w * x) with a learned frequency per feature (Hyena's filter activation)."""

    def __init__(self, width: int, freq: float = 1.0):
        super().__init__()
        self.freq = nn.Parameter(torch.full((width,), freq))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.freq * x)


class ImplicitFilter(nn.Module):
    """Hyena's implicit long filter: h(t) = decay(t) * FFN(positional features of t), per channel.

    Positional features of lag t are [t / REF_LEN, cos(f_b t), -sin(f_b t)] with fixed frequencies
    f_b = 2 pi b / REF_LEN (b = 1e-4, 1, ..., bands-1, as in Hyena). Hyena normalises t by the
    training length; here a fixed REF_LEN is used instead, so that h at lag t is the same for every
    sequence length (the parameters never depend on L, and a prefix of a longer sequence gets the
    same outputs). Decay rates per channel follow Hyena's ExponentialModulation (fixed, linspace).
    """

    REF_LEN = 1024

    def __init__(self, channels: int, width: int = 64, emb_dim: int = 5, layers: int = 2):
        super().__init__()
        if emb_dim < 3 or emb_dim % 2 == 0:
            raise ValueError(f"ImplicitFilter: emb_dim must be odd and >= 3, got {emb_dim}")
        self.bands, self.channels = (emb_dim - 1) // 2, channels
        mods: list[nn.Module] = [nn.Linear(emb_dim, width), Sin(width)]
        for _ in range(layers - 1):
            mods += [nn.Linear(width, width), Sin(width)]
        mods.append(nn.Linear(width, channels, bias=False))
        self.ffn = nn.Sequential(*mods)

    def forward(self, length: int) -> torch.Tensor:
        """The filter (C, length) for lags 0..length-1."""
        dtype, device = self.ffn[0].weight.dtype, self.ffn[0].weight.device
        lag = torch.arange(length, device=device, dtype=dtype)[:, None]  # (L, 1)
        t = lag / self.REF_LEN
        bands = torch.linspace(1e-4, self.bands - 1, self.bands, device=device, dtype=dtype)
        freqs = 2 * math.pi * bands / self.REF_LEN  # (bands,)
        phase = lag * freqs  # (L, bands)
        z = torch.cat([t, torch.cos(phase), -torch.sin(phase)], dim=-1)  # (L, emb_dim)
        h = self.ffn(z)  # (L, C)
        # Hyena's decay: exp(-t |delta_c|), delta_c from log(1e-2)/1.5 (slow) to log(1e-2)/0.3 (fast)
        target = math.log(1e-2)
        rates = torch.linspace(target / 1.5, target / 0.3, self.channels, device=device, dtype=dtype).abs()
        h = h * torch.exp(-t * rates)  # (L, C)
        return h.transpose(0, 1)  # (C, L)


def fft_conv_flops(channels: int, seq_len: int) -> int:
    """FLOPs per token of an FFT convolution over `channels` (3 real FFTs of size 2L at ~2.5 n log2 n,
    plus the complex product), divided by L: the L log L term that no weight count captures."""
    n = 2 * max(seq_len, 1)
    per_channel = 3 * 2.5 * n * math.log2(n) + 6 * (n // 2 + 1)
    return int(channels * per_channel / max(seq_len, 1))


def long_conv_step(kernel: torch.Tensor, x_t: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step of a causal long convolution: y_t = sum_{s<=t} kernel_s x_{t-s}.

    kernel: (C, t+1), lags 0..t; x_t: (B, C); history: (B, C, t), every past input (oldest first).
    Returns y_t (B, C) and the history grown by x_t (B, C, t+1).
    """
    history = torch.cat([history, x_t.unsqueeze(-1)], dim=-1)
    return (history * kernel.flip(-1)).sum(-1), history
