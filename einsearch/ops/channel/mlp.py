"""Dense channel mixers: the Transformer MLP and the GLU family (SwiGLU, GeGLU, ReGLU, GLU).

Both act on each token alone, so they are causal whatever `causal` says.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.registry import register

EXPANDS = (1, 2, 4)

# GLU gate activations by their paper names: swish -> SwiGLU, gelu -> GeGLU, relu -> ReGLU,
# sigmoid -> the original GLU (Dauphin et al.).
GATE_ACTS = {"swish": F.silu, "gelu": F.gelu, "relu": F.relu, "sigmoid": torch.sigmoid}
MLP_ACTS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu}


def glu_hidden(dim: int, expand: int) -> int:
    """Hidden width of a GLU: round(2/3 * expand * dim).

    GLUs have three weight matrices to the MLP's two; the 2/3 factor keeps the parameter count of a
    GLU equal to that of an MLP with the same `expand` (the LLaMA convention: 8/3 d for expand 4).
    """
    return max(1, round(2 * expand * dim / 3))


@register(
    "mlp", category="ffn", cost="L",
    hparams={"expand": EXPANDS, "act": tuple(MLP_ACTS)},)
class MLP(nn.Module):
    """Transformer feed-forward: Linear(D, expand*D) -> act -> Linear(expand*D, D), with biases.

    Per token, so `causal` changes nothing.
    """

    def __init__(self, dim: int, causal: bool = True, expand: int = 4, act: str = "gelu"):
        super().__init__()
        if act not in MLP_ACTS:
            raise ValueError(f"mlp: unknown act {act!r}; choose from {list(MLP_ACTS)}")
        self.act = MLP_ACTS[act]
        self.fc_in = nn.Linear(dim, expand * dim)
        self.fc_out = nn.Linear(expand * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        return self.fc_out(self.act(self.fc_in(x)))


@register(
    "glu", category="ffn", cost="L",
    hparams={"expand": EXPANDS, "act": tuple(GATE_ACTS)},)
class GLU(nn.Module):
    """Gated linear unit FFN: W2(act(W1 x) * W3 x), no biases (Shazeer 2020; LLaMA).

    Hidden width round(2/3 * expand * D) (see `glu_hidden`). Per token, so `causal` changes nothing.
    """

    def __init__(self, dim: int, causal: bool = True, expand: int = 4, act: str = "swish"):
        super().__init__()
        if act not in GATE_ACTS:
            raise ValueError(f"glu: unknown act {act!r}; choose from {list(GATE_ACTS)}")
        hidden = glu_hidden(dim, expand)
        self.act = GATE_ACTS[act]
        self.w1 = nn.Linear(dim, hidden, bias=False)  # gate branch
        self.w3 = nn.Linear(dim, hidden, bias=False)  # value branch
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        return self.w2(self.act(self.w1(x)) * self.w3(x))
