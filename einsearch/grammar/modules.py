"""torch modules for the grammar's structure: the network, residual blocks, parallel layers.

Each class maps one node kind of the derivation tree; `einsearch.grammar.checker` wires them (with the
fundamental operations of `einsearch.ops.compose` and the registered primitives) together, and export
writes these same classes out as source.
"""
from __future__ import annotations

import torch
from torch import nn

from einsearch.ops.common import make_norm
from einsearch.ops.context import run_with_context


class Net(nn.Module):
    """Task stem -> blocks -> task head.

    The blocks run with the cross-layer context (`einsearch.ops.context`): primitives that declare
    `context_needs` read the stem output and/or the most recent attention matrix.
    """

    def __init__(self, stem: nn.Module, blocks: list[nn.Module], head: nn.Module):
        super().__init__()
        self.stem = stem
        self.blocks = nn.ModuleList(blocks)
        self.head = head

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.stem(inputs)))

    def backbone(self, x: torch.Tensor) -> torch.Tensor:
        """The blocks applied to the stem output x (B, L, D), context wired in -> (B, L, D)."""
        return run_with_context(self.blocks, x)


class Block(nn.Module):
    """Residual wrapper. pre: x + f(n(x)); post: n(x + f(x)); sandwich: x + n2(f(n1(x))); none: x + f(x)."""

    def __init__(self, layer: nn.Module, dim: int, place: str, norm: str | None):
        super().__init__()
        self.place = place
        self.layer = layer
        if place != "none":
            self.norm = make_norm(norm, dim)
        if place == "sandwich":
            self.norm_out = make_norm(norm, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.place == "pre":
            return x + self.layer(self.norm(x))
        if self.place == "post":
            return self.norm(x + self.layer(x))
        if self.place == "sandwich":
            return x + self.norm_out(self.layer(self.norm(x)))
        return x + self.layer(x)


class Parallel(nn.Module):
    """Branches on the same input; outputs averaged ("mean") or summed ("sum": the parallel block)."""

    def __init__(self, layers: list[nn.Module], agg: str = "mean"):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.scale = 1.0 / len(layers) if agg == "mean" else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(layer(x) for layer in self.layers) * self.scale
