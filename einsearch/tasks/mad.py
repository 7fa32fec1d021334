"""The MAD suite (Poli et al. 2024): six synthetic tasks, their baseline settings and variations.

Each task's defaults are MAD's baseline setting; its parameters are the difficulty knobs MAD varies
(one at a time: `variations()`), e.g. `mad-recall:vocab=64`. Training uses every next token; the
metric (accuracy) counts recall positions only (`MaskedBatch.scored`). A finite training set of
`train_examples` sequences is drawn once per training seed and sampled with replacement.
`sized("cpu")` gives each task's CPU size (sequences of at most 64, so one candidate trains in about a
minute on one thread, at sizes where the baselines separate: bench/task_separation.py records them),
`sized("tiny")` its test size. `mad` averages as MAD does (see `aggregate.py`); `mad:size=cpu` is the
suite at CPU size.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Callable, ClassVar, Iterator

import torch
from torch import nn

from einsearch.tasks import mad_data
from einsearch.tasks.base import Batch, Recipe, Task, TaskError, TokenSequenceTask
from einsearch.tasks.registry import register_task


@dataclass(frozen=True)
class MaskedBatch(Batch):
    scored: torch.Tensor  # (B, L) bool: positions the metric counts


@dataclass(frozen=True)
class MadTask(TokenSequenceTask):
    """Base of the MAD token tasks: a generator of (tokens, scored) per sequence."""

    causal = True
    metric = "accuracy"
    higher_is_better = True
    batch_size: ClassVar[int] = 64
    lr: ClassVar[float] = 3e-3
    eval_batches: ClassVar[int] = 8
    VARIATIONS: ClassVar[dict[str, tuple]] = {}
    TINY: ClassVar[dict[str, object]] = {}
    CPU: ClassVar[dict[str, object]] = {}  # MAD's baseline setting where it is already CPU-sized

    vocab: int = 16
    seq: int = 128
    train_examples: int = 12800

    @property
    def recipe(self) -> Recipe:
        """MQAR's short-budget recipe (a constant rate from the first step, AdamW beta2 0.999). At the CPU
        sizes, 600 steps put attention and DeltaNet at 0.97-1.0 on recall, fuzzy and noisy recall, the gated
        convolutions visibly lower on recall, fuzzy recall and selective copying, and spread the baselines
        on compression and memorization (bench/RESULTS.md, "Task separation, `mad:size=cpu`")."""
        return Recipe(steps=600, batch_size=self.batch_size, lr=self.lr, schedule="constant", warmup=0,
                      betas=(0.9, 0.999))

    def __post_init__(self) -> None:
        if self.vocab < 4 or self.seq < 4 or self.train_examples < 1:
            raise TaskError(f"needs vocab >= 4, seq >= 4, train_examples >= 1 (got {self.vocab}, {self.seq}, "
                            f"{self.train_examples})")

    @classmethod
    def variations(cls) -> list["MadTask"]:
        """MAD's settings for this task: the baseline, then each knob varied alone."""
        base = cls()
        return [base] + [replace(base, **{knob: value}) for knob, values in cls.VARIATIONS.items() for value in values]

    @classmethod
    def sized(cls, size: str) -> "MadTask":
        """The task at a named size: `default` (MAD's baseline setting), `cpu` or `tiny` (tests)."""
        return cls(**{"default": {}, "cpu": cls.CPU, "tiny": cls.TINY}[size])

    def sequence(self, rng: random.Random) -> tuple[list[int], list[bool]]:
        raise NotImplementedError

    def _batch(self, items: list[tuple[list[int], list[bool]]]) -> MaskedBatch:
        tokens = torch.tensor([t for t, _ in items])  # (B, seq + 1)
        scored = torch.tensor([s for _, s in items])  # (B, seq)
        return MaskedBatch(tokens[:, :-1], tokens[:, 1:], scored)

    def batches(self, split: str, batch_size: int, seed: int) -> Iterator[Batch]:
        rng = random.Random(seed * 2 + (split != "train"))
        if split != "train":
            while True:
                yield self._batch([self.sequence(rng) for _ in range(batch_size)])
        pool = [self.sequence(rng) for _ in range(self.train_examples)]
        while True:
            yield self._batch([pool[rng.randrange(len(pool))] for _ in range(batch_size)])

    def score(self, logits: torch.Tensor, batch: Batch) -> tuple[float, int]:
        mask = batch.scored  # type: ignore[attr-defined]
        pred = logits.argmax(-1)
        return float((pred[mask] == batch.targets[mask]).sum()), int(mask.sum())


@register_task("mad-recall")
@dataclass(frozen=True)
class MadRecall(MadTask):
    """MAD in-context recall: values of keys seen earlier in the sequence."""

    VARIATIONS = {"vocab": (32, 64, 128), "seq": (256, 512, 1024), "train_examples": (6400, 3200, 1600, 800)}
    TINY = {"vocab": 16, "seq": 32, "train_examples": 512}
    # At MAD's 16 tokens keys recur so often in 64 that every baseline reaches 0.99; at 32 Hyena and BaseConv
    # stay at 0.75 and 0.30; at 64 attention's jump comes after 600 steps (bench/RESULTS.md).
    CPU = {"seq": 64, "vocab": 32}

    def sequence(self, rng: random.Random) -> tuple[list[int], list[bool]]:
        return mad_data.recall(rng, self.vocab, self.seq)


@register_task("mad-fuzzy-recall")
@dataclass(frozen=True)
class MadFuzzyRecall(MadRecall):
    """MAD fuzzy in-context recall: keys and values of 1..3 tokens."""

    CPU = {"seq": 64}  # keys of 1..3 tokens are distinct enough at MAD's vocabulary of 16

    def sequence(self, rng: random.Random) -> tuple[list[int], list[bool]]:
        return mad_data.recall(rng, self.vocab, self.seq, fuzzy=True)


@register_task("mad-noisy-recall")
@dataclass(frozen=True)
class MadNoisyRecall(MadTask):
    """MAD noisy in-context recall: noise tokens (their own vocabulary) between the pairs."""

    VARIATIONS = {"vocab": (48, 80, 144), "frac_noise": (0.4, 0.6, 0.8)}
    TINY = {"vocab": 32, "seq": 32, "train_examples": 512}
    # At vocab 48 (32 tokens besides the noise, as recall's CPU size has) attention's jump comes after 600
    # steps on 2 seeds of 3; MAD's 32 separates BaseConv only (bench/RESULTS.md).
    CPU = {"seq": 64}

    vocab: int = 32
    noise_vocab: int = 16
    frac_noise: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 2 <= self.vocab - self.noise_vocab or not 0 <= self.frac_noise < 1:
            raise TaskError(f"needs vocab - noise_vocab >= 2 and 0 <= frac_noise < 1 (got {self.vocab}, "
                            f"{self.noise_vocab}, {self.frac_noise})")

    def sequence(self, rng: random.Random) -> tuple[list[int], list[bool]]:
        return mad_data.recall(rng, self.vocab, self.seq, self.noise_vocab, self.frac_noise)


@register_task("mad-selective-copy")
@dataclass(frozen=True)
class MadSelectiveCopy(MadTask):
    """MAD selective copying: copy the content tokens scattered among blanks, in order, after a separator."""

    VARIATIONS = {"vocab": (32, 64, 128), "seq": (512, 1024), "copy": (32, 64, 96)}
    TINY = {"vocab": 16, "seq": 32, "copy": 4, "train_examples": 512}
    CPU = {"seq": 64, "copy": 8}

    seq: int = 256
    copy: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.copy <= self.seq // 2:
            raise TaskError(f"needs 1 <= copy <= seq / 2 (got copy={self.copy}, seq={self.seq})")

    def sequence(self, rng: random.Random) -> tuple[list[int], list[bool]]:
        return mad_data.selective_copy(rng, self.vocab, self.seq, self.copy)


class LastPositionDecoder(nn.Module):
    """(B, L, D) -> (B, seq, vocab): an MLP decodes the whole sequence from the last position alone."""

    def __init__(self, dim: int, seq: int, vocab: int):
        super().__init__()
        self.seq, self.vocab = seq, vocab
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, seq * vocab))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm(x[:, -1])).view(x.shape[0], self.seq, self.vocab)


@register_task("mad-compression")
@dataclass(frozen=True)
class MadCompression(MadTask):
    """MAD compression (autoencoder): reconstruct the whole sequence from the model's last position."""

    VARIATIONS = {"vocab": (32, 64, 128), "seq": (64, 128, 256)}
    TINY = {"vocab": 16, "seq": 8, "train_examples": 512}
    # At MAD's 32 tokens every baseline stays at 0.24-0.32 after 600 steps; at 16 they spread over 0.42-0.57
    # (attention lowest) with seed-to-seed spread of 0.01-0.03; at 8 all reach 0.96-1.0 (bench/RESULTS.md).
    CPU = {"seq": 16}

    seq: int = 32

    def make_head(self, dim: int) -> nn.Module:
        return LastPositionDecoder(dim, self.seq, self.vocab)

    def _batch(self, items: list) -> MaskedBatch:
        tokens = torch.tensor([t for t, _ in items])  # (B, seq): the targets are the inputs
        return MaskedBatch(tokens, tokens.clone(), torch.ones_like(tokens, dtype=torch.bool))

    def sequence(self, rng: random.Random) -> tuple[list[int], list[bool]]:
        return mad_data.compression(rng, self.vocab, self.seq), []


@register_task("mad-memorization")
@dataclass(frozen=True)
class MadMemorization(MadTask):
    """MAD memorization: one fixed key-value map across all sequences, learned into the weights."""

    VARIATIONS = {"vocab": (512, 1024, 2048, 4096, 8192)}
    TINY = {"vocab": 32, "seq": 16, "train_examples": 64}
    # MAD's 128 facts (vocab 256) and 512 (vocab 1024) are learned by every baseline; 1,024 facts (vocab 2048)
    # spread them (bench/RESULTS.md). The 256 training sequences show about 98% of those keys, so 0.98 is the
    # ceiling; at vocab 4096 they show 87%.
    CPU = {"vocab": 2048}

    vocab: int = 256
    seq: int = 32
    train_examples: int = 256

    def sequence(self, rng: random.Random) -> tuple[list[int], list[bool]]:
        return mad_data.memorization(rng, self.vocab, self.seq, mad_data.fixed_map(self.vocab))


MAD_TASKS: dict[str, Callable[[], type[MadTask]]] = {
    "recall": lambda: MadRecall, "fuzzy-recall": lambda: MadFuzzyRecall, "noisy-recall": lambda: MadNoisyRecall,
    "selective-copy": lambda: MadSelectiveCopy, "compression": lambda: MadCompression,
    "memorization": lambda: MadMemorization,
}


@register_task("mad")
@dataclass(frozen=True)
class MadSuite(Task):
    """The MAD suite: one model per task setting; the mean per task, then over the six tasks."""

    causal = True
    metric = "accuracy"
    higher_is_better = True

    settings: str = "baseline"  # baseline: MAD's baseline setting of each task; all: every variation too
    size: str = "default"  # default: MAD's settings | cpu: sequences of at most 64 | tiny (tests)

    def __post_init__(self) -> None:
        if self.settings not in ("baseline", "all") or self.size not in ("default", "cpu", "tiny"):
            raise TaskError(f"settings must be baseline|all and size default|cpu|tiny, got {self.settings}, "
                            f"{self.size}")
        if self.settings == "all" and self.size != "default":
            raise TaskError(f"settings=all are MAD's own sizes: give size=default, not size={self.size}")

    def members(self) -> list[tuple[str, Task]]:
        """(task name, task) for every model to train."""
        out: list[tuple[str, Task]] = []
        for name, cls in ((n, f()) for n, f in MAD_TASKS.items()):
            if self.size != "default":
                out.append((name, cls.sized(self.size)))
            else:
                out.extend((name, t) for t in (cls.variations() if self.settings == "all" else [cls()]))
        return out

    def _first(self) -> Task:
        return self.members()[0][1]

    @property
    def recipe(self) -> Recipe:
        """The members' recipe (they share one), so the suite trains each member for its own steps."""
        return self._first().recipe

    @property
    def seq_len(self) -> int:
        return self._first().seq_len

    def make_stem(self, dim: int) -> nn.Module:
        return self._first().make_stem(dim)

    def make_head(self, dim: int) -> nn.Module:
        return self._first().make_head(dim)

    def example_input(self, batch: int = 2) -> torch.Tensor:
        return self._first().example_input(batch)

    def output_shape(self, batch: int) -> tuple[int, ...]:
        return self._first().output_shape(batch)

    def batches(self, split: str, batch_size: int, seed: int) -> Iterator[Batch]:
        raise TaskError("task mad is an aggregate: it trains one model per member task (see members())")
