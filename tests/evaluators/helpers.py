"""Small models and architectures shared by the evaluator tests."""
from __future__ import annotations

import torch
from torch import nn

from einsearch.search.library import get_baseline
from einsearch.tasks import get_task


class TinyCausalLM(nn.Module):
    """Embedding, a causal running mean plus the current token, a linear head: (B, L) -> (B, L, V)."""

    def __init__(self, vocab: int, dim: int = 16):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mix = nn.Linear(2 * dim, dim)
        self.head = nn.Linear(dim, vocab)
        self.aux_loss = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)  # (B, L, D)
        steps = torch.arange(1, ids.shape[1] + 1, device=ids.device).view(1, -1, 1)
        context = x.cumsum(1) / steps  # (B, L, D): mean of the prefix
        return self.head(torch.relu(self.mix(torch.cat([x, context], -1))))


def small_arch(name: str, task: str, width: int = 32, depth: int = 1) -> str:
    """A baseline architecture string from the library, sized small."""
    return str(get_baseline(name, get_task(task), width=width, depth=depth))


class ScriptedStrategy:
    """An ask/tell strategy that proposes a fixed list of candidates in order (the search loop's tests:
    a fault per candidate, then check what the loop stored and that it went on)."""

    name = "scripted"
    warning = None

    def __init__(self, candidates: list) -> None:
        self.queue = list(candidates)
        self.told: list = []

    def ask(self):
        return self.queue.pop(0)

    def tell(self, candidate, result) -> None:
        self.told.append((candidate, result))

    def replay(self, asked, told) -> None:
        self.told.extend(told)

    def score(self, result):
        return result.metric if result.status == "ok" else None
