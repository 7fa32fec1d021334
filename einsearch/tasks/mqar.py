"""MQAR: multi-query associative recall, generated exactly as Zoology (Arora et al. 2023) defines it.

Keys are drawn without replacement from [1, V/2), values without replacement from [V/2, V). The
sequence opens with k1 v1 ... kN vN; then each key recurs once as a query, at slot 2*g of the rest
of the sequence, with the gaps g drawn without replacement with p(g) ~ g^(a-1), a = 0.01 (short gaps
favoured). Other positions hold 0, or random tokens with `random_fill=true`. Only query positions
are labelled (the paired value, as the next token); the rest are -100, so loss and accuracy cover
queries alone. Constraints: T >= 4N and V > T.

Specs: `mqar:seq=128,pairs=8,vocab=8192`. Named presets (same canonical spec as the explicit form):
Zoology's `mqar-64` (T 64, N 4), `mqar-128` (128, 8), `mqar-256` (256, 16), `mqar-512` (512, 64), all
V = 8192; `mqar-cpu` (T 128, N 8, V 256: the T=128 setting with a vocabulary a CPU trains quickly);
`mqar-tiny` (T 32, N 4, V 64: tests). Plain `mqar` is Zoology's T=128 setting.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Iterator

import torch
from torch import nn

from einsearch.tasks.base import Batch, Recipe, TaskError, TokenSequenceTask
from einsearch.tasks.registry import register_task

POWER_A = 0.01


def mqar_batch(batch: int, seq: int, pairs: int, vocab: int, gen: torch.Generator,
               random_fill: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels), both (batch, seq) int64; labels -100 except at query positions."""
    half = vocab // 2
    context = 2 * pairs
    # Without replacement per row: the first `pairs` entries of a random permutation.
    keys = torch.rand(batch, half - 1, generator=gen).argsort(dim=1)[:, :pairs] + 1  # (B, N) in [1, V/2)
    values = torch.rand(batch, vocab - half, generator=gen).argsort(dim=1)[:, :pairs] + half  # (B, N) in [V/2, V)
    space = (seq - context) // 2  # query slots: every other position after the context
    weights = POWER_A * torch.arange(1, space + 1, dtype=torch.float64) ** (POWER_A - 1)
    gaps = torch.multinomial(weights.expand(batch, space), pairs, replacement=False, generator=gen)  # (B, N)
    inputs = torch.zeros(batch, seq, dtype=torch.long)
    inputs[:, 0:context:2] = keys
    inputs[:, 1:context:2] = values
    query_pos = context + 2 * gaps  # (B, N)
    inputs.scatter_(1, query_pos, keys)
    labels = torch.full((batch, seq), -100, dtype=torch.long)
    labels.scatter_(1, query_pos, values)
    if random_fill:
        filler = torch.randint(0, vocab, (batch, seq), generator=gen)
        inputs = torch.where(inputs == 0, filler, inputs)
    return inputs, labels


@register_task("mqar")
@dataclass(frozen=True)
class MQAR(TokenSequenceTask):
    """Multi-query associative recall (Zoology): accuracy on the query positions."""

    causal = True
    metric = "accuracy"
    higher_is_better = True
    batch_size: ClassVar[int] = 64
    lr: ClassVar[float] = 3e-3
    eval_batches: ClassVar[int] = 8

    seq: int = 128
    pairs: int = 8
    vocab: int = 8192
    random_fill: bool = False

    def __post_init__(self) -> None:
        if self.pairs < 1:
            raise TaskError(f"pairs must be >= 1, got {self.pairs}")
        if self.seq < 4 * self.pairs:
            raise TaskError(f"needs seq >= 4 * pairs, got seq={self.seq}, pairs={self.pairs}")
        if self.vocab <= self.seq:
            raise TaskError(f"needs vocab > seq, got vocab={self.vocab}, seq={self.seq}")

    @property
    def spec(self) -> str:
        # Presets are spelled as the explicit form, so 'mqar-128' and 'mqar:seq=128,...' share results.
        params = ",".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self))
        return f"mqar:{params}"

    @property
    def plateau(self) -> float:
        """1/N: a model that knows a query's answer is one of the N values in context, but not which, guesses
        among them (bench/RESULTS.md: baselines that cannot recall sit at 0.23-0.27 with N=4,
        0.13 with N=8, 0.09-0.10 with N=16, where some learn a little more than the guess)."""
        return 1.0 / self.pairs

    @property
    def recipe(self) -> Recipe:
        """Up to T=64: a constant rate from the first step with AdamW's beta2 0.999 (bench/trainer_reference.py:
        the transformer baseline reaches 0.99 at about 300 steps, where warm-up + cosine with beta2 0.95 was
        still near 0.8 at 400). Longer sequences: warm-up + cosine over 3,000 steps, the recipe under which
        the transformer baseline reached 1.0 on mqar-cpu (a constant rate stayed near 0.14 after 2,000)."""
        if self.seq <= 64:
            return Recipe(steps=600, batch_size=self.batch_size, lr=self.lr, schedule="constant", warmup=0,
                          betas=(0.9, 0.999))
        return Recipe(steps=3000, batch_size=self.batch_size, lr=self.lr, schedule="cosine")

    def batches(self, split: str, batch_size: int, seed: int) -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(seed * 2 + (split != "train"))
        while True:
            yield Batch(*mqar_batch(batch_size, self.seq, self.pairs, self.vocab, gen, self.random_fill))


def _preset(name: str, seq: int, pairs: int, vocab: int, doc: str) -> type[MQAR]:
    fields = [("seq", int, dataclasses.field(default=seq)), ("pairs", int, dataclasses.field(default=pairs)),
              ("vocab", int, dataclasses.field(default=vocab))]
    cls = dataclasses.make_dataclass(f"MQAR_{name.split('-')[1]}", fields, bases=(MQAR,), frozen=True,
                                     namespace={"__doc__": doc, "__module__": __name__})
    return register_task(name)(cls)


for _seq, _pairs in ((64, 4), (128, 8), (256, 16), (512, 64)):
    _preset(f"mqar-{_seq}", _seq, _pairs, 8192, f"MQAR, Zoology's setting T={_seq}, N={_pairs}, V=8192.")
_preset("mqar-cpu", 128, 8, 256, "MQAR at T=128, N=8 with V=256: Zoology's T=128 setting sized for a CPU.")
_preset("mqar-tiny", 32, 4, 64, "MQAR at T=32, N=4, V=64: for tests.")
