"""The task types: a `Task` owns everything task-specific (data, stem, head, loss, metric, causality).

Registration and name resolution live in `einsearch.tasks.registry`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from einsearch.errors import EinsearchError


class TaskError(EinsearchError, ValueError):
    """A task spec that names no task, or gives a bad parameter."""


@dataclass(frozen=True)
class Batch:
    inputs: torch.Tensor  # (B, L) token ids, or (B, C, H, W) images
    targets: torch.Tensor  # (B, L) next-token ids with -100 = ignore, or (B,) class ids


class TokenStem(nn.Module):
    """Token ids (B, L) -> embeddings (B, L, D)."""

    def __init__(self, vocab: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids)


class SequenceHead(nn.Module):
    """(B, L, D) -> per-position logits (B, L, n_out): next-token prediction."""

    def __init__(self, dim: int, n_out: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(x))


class PooledHead(nn.Module):
    """(B, L, D) -> class logits (B, n_out): mean over positions (non-causal tasks only)."""

    def __init__(self, dim: int, n_out: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(x).mean(dim=1))


@dataclass(frozen=True)
class Recipe:
    """How a task trains when nothing else is asked: steps, batch, peak rate and its schedule
    (`TrainConfig.for_task` starts from it; `einsearch tasks` shows it)."""

    steps: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    schedule: str = "cosine"  # after warm-up: "cosine" (down to 10% of lr) or "constant"
    warmup: int | None = None  # steps; None: min(100, steps // 10)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be cosine or constant, got {self.schedule!r}")

    def describe(self) -> str:
        warmup = "auto" if self.warmup is None else str(self.warmup)
        return (f"{self.steps} steps, batch {self.batch_size}, lr {self.lr:g}, warm-up {warmup}, {self.schedule}, "
                f"betas {self.betas[0]:g}/{self.betas[1]:g}")


@dataclass(frozen=True)
class Task:
    """Base task. Subclasses are frozen dataclasses whose fields are the spec's parameters."""

    name: ClassVar[str] = "task"
    causal: ClassVar[bool] = True
    metric: ClassVar[str] = "accuracy"
    higher_is_better: ClassVar[bool] = True
    # Filled by register_task from the parameter names of a subclass.

    @property
    def recipe(self) -> Recipe:
        """The task's default training recipe; subclasses override it, or set the class attributes
        `batch_size` and `lr` (the rest keeps `Recipe`'s defaults)."""
        base = Recipe()
        return Recipe(batch_size=getattr(self, "batch_size", base.batch_size), lr=getattr(self, "lr", base.lr))

    @property
    def plateau(self) -> float | None:
        """The metric of a model that has learnt the output's format but not the skill the task tests,
        where training sits before it learns that skill (MQAR: a guess among the values in context);
        None where the task has no such level. Search reads it for `evolution:metric_floor=auto`."""
        return None

    @property
    def seq_len(self) -> int:
        raise NotImplementedError

    @property
    def spec(self) -> str:
        """Canonical spec string: name plus every parameter, so equal tasks have equal specs."""
        params = ",".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self))
        return f"{self.name}:{params}" if params else self.name

    # --- model parts -------------------------------------------------------------------------
    def make_stem(self, dim: int) -> nn.Module:
        raise NotImplementedError

    def make_head(self, dim: int) -> nn.Module:
        raise NotImplementedError

    def example_input(self, batch: int = 2) -> torch.Tensor:
        """A random model input of the right shape and dtype (for tests and smoke checks)."""
        raise NotImplementedError

    def output_shape(self, batch: int) -> tuple[int, ...]:
        raise NotImplementedError

    # --- data, loss, metric (used by evaluators) -------------------------------------------
    def batches(self, split: str, batch_size: int, seed: int) -> Any:
        """An iterator of `Batch` for split 'train' or 'valid'."""
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        if logits.dim() == 3:
            return nn.functional.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), ignore_index=-100)
        return nn.functional.cross_entropy(logits, batch.targets)

    def score(self, logits: torch.Tensor, batch: Batch) -> tuple[float, int]:
        """(sum of per-item metric, number of items) for the batch; default: accuracy."""
        pred = logits.argmax(-1)
        mask = batch.targets != -100
        return float((pred[mask] == batch.targets[mask]).sum()), int(mask.sum())

    def extra_metrics(self, metric: float, batches: list[Batch]) -> dict[str, float]:
        """Figures reported beside the final metric, from the held-out batches it was scored on (e.g. a
        reference estimator's error on the same data); default: none."""
        return {}


class TokenSequenceTask(Task):
    """A task on `seq` token ids from a vocabulary of `vocab` with next-token logits at every position
    (the subclass declares the `seq` and `vocab` fields): the stem, head and shapes they all share."""

    seq: int
    vocab: int

    @property
    def seq_len(self) -> int:
        return self.seq

    def make_stem(self, dim: int) -> nn.Module:
        return TokenStem(self.vocab, dim)

    def make_head(self, dim: int) -> nn.Module:
        return SequenceHead(dim, self.vocab)

    def example_input(self, batch: int = 2) -> torch.Tensor:
        return torch.randint(0, self.vocab, (batch, self.seq))

    def output_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.seq, self.vocab)
