"""Two tiny tasks that stay for tests: toy-causal (next token) and toy-classify (sequence class)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from einsearch.tasks.base import Batch, PooledHead, SequenceHead, Task, TaskError, TokenStem
from einsearch.tasks.registry import register_task


@dataclass(frozen=True)
class _TokenTask(Task):
    vocab: int = 64
    seq: int = 32

    def __post_init__(self) -> None:
        if self.vocab < 4 or self.seq < 2:
            raise TaskError(f"needs vocab >= 4 and seq >= 2, got vocab={self.vocab}, seq={self.seq}")

    @property
    def seq_len(self) -> int:
        return self.seq

    def make_stem(self, dim: int) -> nn.Module:
        return TokenStem(self.vocab, dim)

    def example_input(self, batch: int = 2) -> torch.Tensor:
        return torch.randint(0, self.vocab, (batch, self.seq))


@register_task("toy-causal")
@dataclass(frozen=True)
class ToyCausal(_TokenTask):
    """Next-token prediction on sequences that repeat a random motif of 2..8 tokens."""

    causal = True

    def make_head(self, dim: int) -> nn.Module:
        return SequenceHead(dim, self.vocab)

    def output_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.seq, self.vocab)

    def batches(self, split: str, batch_size: int, seed: int) -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(seed * 2 + (split != "train"))
        while True:
            period = torch.randint(2, 9, (batch_size, 1), generator=gen)
            motif = torch.randint(0, self.vocab, (batch_size, 8), generator=gen)
            pos = torch.arange(self.seq + 1).unsqueeze(0) % period
            seqs = motif.gather(1, pos)
            yield Batch(seqs[:, :-1], seqs[:, 1:].clone())


@register_task("toy-classify")
@dataclass(frozen=True)
class ToyClassify(_TokenTask):
    """Non-causal: which of 4 token groups is most frequent in the sequence."""

    causal = False
    classes: int = 4

    def make_head(self, dim: int) -> nn.Module:
        return PooledHead(dim, self.classes)

    def output_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.classes)

    def batches(self, split: str, batch_size: int, seed: int) -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(seed * 2 + (split != "train"))
        while True:
            ids = torch.randint(0, self.vocab, (batch_size, self.seq), generator=gen)
            groups = ids % self.classes
            counts = torch.stack([(groups == c).sum(1) for c in range(self.classes)], dim=1)
            yield Batch(ids, counts.argmax(1))
