"""Cross-layer context: what a few primitives read from outside their own input.

Two things, both made per forward by `einsearch.grammar.modules.Net`:
- `embedding`: the stem's output (B, L, D), the network's input embedding (decoupled query/key
  attention computes its queries and keys from it);
- `attention`: the most recent attention matrix (B, H, L, L) of an attention primitive that runs
  before the consumer (attention-aware MoE routing smooths its router probabilities with it).

A primitive that needs context subclasses `ContextConsumer`, lists what it reads in the class
attribute `context_needs` (and the same tuple in its registration, `needs_context`), and reads
`self.context` during forward. `self.context` is None outside a Net's forward (a primitive built on
its own, or blocks called one by one); every consumer defines that fallback in its docstring.

Attention matrices are O(L^2) explicit, so they are computed only for the attention primitives whose
matrix some consumer reads: `context_plan` walks the modules in forward order and picks, for each
consumer that needs "attention", the last module before it that has an `attention_weights(x)`
method; a forward hook on that module then calls `attention_weights` on the module's own input.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

CONTEXT_KINDS = ("embedding", "attention")


@dataclass
class Context:
    """Per-forward cross-layer values; see the module docstring."""

    embedding: torch.Tensor | None = None  # (B, L, D) stem output
    attention: torch.Tensor | None = None  # (B, H, L, L) most recent attention matrix, rows sum to 1

    def record_attention(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        """Forward hook for an attention primitive: its explicit matrix for the input it just saw."""
        self.attention = module.attention_weights(args[0])


class ContextConsumer(nn.Module):
    """Base of primitives that read a `Context` (set by Net around its forward, else None)."""

    context_needs: tuple[str, ...] = ()
    context: Context | None = None


def _produces_attention(module: nn.Module) -> bool:
    return callable(getattr(module, "attention_weights", None))


def context_plan(root: nn.Module) -> tuple[list[ContextConsumer], list[nn.Module]]:
    """Consumers under `root` (in forward order) and the attention modules whose matrices they read.

    Forward order is module registration order: blocks, then parallel branches, in order. A module
    with `attention_weights` is one producer (attention modules nested inside it are its internals).
    A module that both consumes and produces reads the matrix of an earlier producer, not its own.
    """
    consumers: list[ContextConsumer] = []
    producers: list[nn.Module] = []
    last: list[nn.Module | None] = [None]

    def visit(module: nn.Module, inside_producer: bool) -> None:
        if isinstance(module, ContextConsumer) and module.context_needs:
            consumers.append(module)
            source = last[0]
            if "attention" in module.context_needs and source is not None and \
                    all(source is not p for p in producers):
                producers.append(source)
        produces = not inside_producer and _produces_attention(module)
        for child in module.children():
            visit(child, inside_producer or produces)
        if produces:
            last[0] = module

    visit(root, False)
    return consumers, producers


def run_with_context(blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """Apply `blocks` in order to x (B, L, D), the stem output, with the context wired in."""
    consumers, producers = context_plan(blocks)
    if not consumers:
        for block in blocks:
            x = block(x)
        return x
    context = Context(embedding=x)
    hooks = [p.register_forward_hook(context.record_attention) for p in producers]
    for consumer in consumers:
        consumer.context = context
    try:
        for block in blocks:
            x = block(x)
    finally:
        for hook in hooks:
            hook.remove()
        for consumer in consumers:
            consumer.context = None
    return x
