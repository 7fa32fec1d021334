"""NiNformer's Mixer Gating Unit (Abdullah & Aydin, 2024): a Mixer block gates a linear projection."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.registry import register
from einsearch.ops.token_mlp.mlp_mixer import TokenMLP


@register(
    "ninformer", category="token_mlp", cost="L^2",
    hparams={"expansion": (1, 2, 4)},    needs_seq_len=True,
    state_size=lambda dim, seq_len, hp: dim * seq_len,
    # the token MLP's T x H weights are shared over channels: 4 H D FLOPs per token
    seq_flops=lambda dim, seq_len, hp: 4 * hp["expansion"] * dim * dim,
)
class NiNformerGate(nn.Module):
    """out = W x * MixerBlock(x), following the authors' code (MixerGatingUnit in ninformer.py).

    MixerBlock(x): m = x + TokenMLP(LN(x)); gate = m + ChannelMLP(LN(m)), a full MLP-Mixer layer
    with GELU. As in the authors' code (MixerGatingUnit(d_model, seq_len, d_ffn, d_ffn)), both
    MLPs have the same hidden width d_ffn = expansion * dim: the token MLP's hidden size follows
    the model width, not the sequence length (the authors train d_model 256, d_ffn 512, 64
    tokens). The outer network of a NiN block (norm, residual, FFN) is the surrounding block's
    job. Causal form: the token MLP's lower-triangular variant (see TokenMLP); LayerNorm is per
    token.
    """

    def __init__(self, dim: int, causal: bool = False, seq_len: int = 64, expansion: int = 2):
        super().__init__()
        if seq_len < 1:
            raise ValueError(f"ninformer: seq_len must be >= 1, got {seq_len}")
        self.causal = causal
        hidden = expansion * dim  # the authors' d_ffn, shared by the token and channel MLPs
        self.proj = nn.Linear(dim, dim)
        self.token_norm = nn.LayerNorm(dim)
        self.token_mlp = TokenMLP(seq_len, hidden, causal)
        self.channel_norm = nn.LayerNorm(dim)
        self.channel_in = nn.Linear(dim, hidden)
        self.channel_out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        m = x + self.token_mlp(self.token_norm(x))
        gate = m + self.channel_out(F.gelu(self.channel_in(self.channel_norm(m))))
        return self.proj(x) * gate
