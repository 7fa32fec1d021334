"""MLP-Mixer's token-mixing MLP (Tolstikhin et al., 2021), with a causal lower-triangular form."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.registry import register

EXPANSIONS = (0.5, 1, 2)


def hidden_size(seq_len: int, expansion: float) -> int:
    return max(1, round(expansion * seq_len))


class TokenMLP(nn.Module):
    """y[:, :, c] = W2 GELU(W1 x[:, :, c] + b1) + b2 across positions, weights shared by channels.

    W1: (H, T), W2: (T, H), T = seq_len. Causal form: hidden unit j sits at position
    p(j) = ceil((j+1) T / H) - 1 (the last of its group of T/H positions, so the last unit sits at
    T-1 and every input is read); it reads inputs s <= p(j), and output t reads hidden units with
    p(j) <= t, so output t depends on inputs <= t only (the masks are applied to the weights).
    With H < T some early outputs get no hidden unit (bias only) rather than ignoring late inputs.
    Inputs shorter than T are treated as zero-padded to T (for the causal form this is the same as
    running the prefix). Longer inputs are an error.
    """

    def __init__(self, seq_len: int, hidden: int, causal: bool):
        super().__init__()
        self.seq_len = seq_len
        pos = ((torch.arange(hidden) + 1) * seq_len + hidden - 1) // hidden - 1  # (H,) position of each unit
        if causal:
            mask_in = (torch.arange(seq_len)[None, :] <= pos[:, None]).float()  # (H, T)
            mask_out = (pos[None, :] <= torch.arange(seq_len)[:, None]).float()  # (T, H)
        else:
            mask_in, mask_out = torch.ones(hidden, seq_len), torch.ones(seq_len, hidden)
        self.register_buffer("mask_in", mask_in, persistent=False)
        self.register_buffer("mask_out", mask_out, persistent=False)
        # nn.Linear's uniform init, with the fan-in of each row counted after masking
        bound_in = mask_in.sum(1, keepdim=True).clamp(min=1).rsqrt()
        bound_out = mask_out.sum(1, keepdim=True).clamp(min=1).rsqrt()
        self.w_in = nn.Parameter((torch.rand(hidden, seq_len) * 2 - 1) * bound_in)
        self.b_in = nn.Parameter((torch.rand(hidden) * 2 - 1) / math.sqrt(seq_len))
        self.w_out = nn.Parameter((torch.rand(seq_len, hidden) * 2 - 1) * bound_out)
        self.b_out = nn.Parameter((torch.rand(seq_len) * 2 - 1) / math.sqrt(hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        length = x.shape[1]
        if length > self.seq_len:
            raise ValueError(f"token MLP built for seq_len {self.seq_len} got a sequence of length {length}")
        w_in = (self.w_in * self.mask_in)[:, :length]  # (H, L)
        w_out = (self.w_out * self.mask_out)[:length]  # (L, H)
        hidden = F.gelu(torch.einsum("bld,hl->bdh", x, w_in) + self.b_in)  # (B, D, H)
        return torch.einsum("bdh,lh->bld", hidden, w_out) + self.b_out[:length, None]


@register(
    "mlp_mixer", category="token_mlp", cost="L^2",
    hparams={"expansion": EXPANSIONS},    needs_seq_len=True,
    # decoding would need every past input; no step form is implemented
    state_size=lambda dim, seq_len, hp: dim * seq_len,
    # the T x H weights are shared over channels: 4 H D FLOPs per token, not 2 x params
    seq_flops=lambda dim, seq_len, hp: 4 * hidden_size(seq_len, hp["expansion"]) * dim,
)
class MLPMixerTokenMix(nn.Module):
    """MLP-Mixer token-mixing MLP, hidden size expansion * seq_len (see TokenMLP).

    Non-causal: full T x T' weights. Causal: lower-triangular weights.
    """

    def __init__(self, dim: int, causal: bool = False, seq_len: int = 64, expansion: float = 1):
        super().__init__()
        if seq_len < 1:
            raise ValueError(f"mlp_mixer: seq_len must be >= 1, got {seq_len}")
        self.causal = causal
        self.token_mlp = TokenMLP(seq_len, hidden_size(seq_len, expansion), causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        return self.token_mlp(x)
