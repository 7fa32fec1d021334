"""Tasks: everything task-specific (data, stem, head, loss, metric, causality, fidelity knob).

A task is a `Task` subclass registered by name; a user task is one file:

    @register_task("my-task")
    class MyTask(Task): ...

or `--task my_module:make_task` for a factory in an importable module. Specs take parameters by
name: `toy-causal:vocab=128,seq=64`.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from einsearch.plugins import import_submodules


class TaskError(ValueError):
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
class Task:
    """Base task. Subclasses are frozen dataclasses whose fields are the spec's parameters."""

    name: ClassVar[str] = "task"
    causal: ClassVar[bool] = True
    metric: ClassVar[str] = "accuracy"
    higher_is_better: ClassVar[bool] = True
    # Filled by register_task from the parameter names of a subclass.

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


_TASKS: dict[str, type[Task]] = {}
_LOADED = False


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    def wrap(cls: type[Task]) -> type[Task]:
        cls.name = name
        _TASKS[name] = cls
        return cls

    return wrap


def _load_all() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        import_submodules("einsearch.evaluators", keep=lambda name: name.startswith("task"))


def list_tasks() -> list[type[Task]]:
    _load_all()
    return [_TASKS[k] for k in sorted(_TASKS)]


def _convert(value: str, like: Any, where: str) -> Any:
    try:
        if isinstance(like, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return value.lower() in ("true", "1")
        return type(like)(value) if like is not None else value
    except ValueError:
        raise TaskError(f"{where}: {value!r} is not a valid {type(like).__name__}") from None


def get_task(spec: str | Task, *, allow_factory: bool = True) -> Task:
    """Parse 'name', 'name:key=value,...' or 'module:factory' into a Task instance.

    A 'module:factory' spec imports and calls code, so it is only for specs a user typed: pass
    `allow_factory=False` for a spec read from data (a database, a file someone else can write),
    and such a spec is refused with a TaskError before anything is imported."""
    if isinstance(spec, Task):
        return spec
    if not isinstance(spec, str):
        raise TaskError(f"a task spec is a string, got {type(spec).__name__}")
    _load_all()
    name, _, rest = spec.strip().partition(":")
    if name not in _TASKS:
        if rest and "=" not in rest and rest.isidentifier():
            if not allow_factory:
                raise TaskError(f"task {spec.strip()[:80]!r} is not a registered task; a module:factory spec "
                                f"is imported only when typed on the command line (--task)")
            return _from_factory(name, rest)
        known = ", ".join(sorted(_TASKS))
        raise TaskError(f"unknown task {name!r} (known: {known})")
    cls = _TASKS[name]
    if hasattr(cls, "from_spec"):
        return cls.from_spec(rest)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise TaskError(f"task {name}: expected key=value, got {item!r}")
        if key not in fields:
            raise TaskError(f"task {name} has no parameter {key!r} (has: {', '.join(fields)})")
        kwargs[key] = _convert(value, fields[key].default, f"task {name}, parameter {key}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise TaskError(f"task {name}: {err}") from None


def _from_factory(module: str, factory: str) -> Task:
    where = f"task {module}:{factory}"
    try:
        target = getattr(importlib.import_module(module), factory)
    except (ImportError, AttributeError) as err:
        raise TaskError(f"{where}: {err}") from None
    if not callable(target):
        raise TaskError(f"{where}: {module}.{factory} is a {type(target).__name__}, not a function or class "
                        f"that makes a Task")
    try:
        task = target()
    except TaskError:
        raise
    except Exception as err:  # the user's factory failed: one line naming it
        raise TaskError(f"{where}: calling it raised {type(err).__name__}: {err}") from None
    if not isinstance(task, Task):
        raise TaskError(f"{where} returned a value of type {type(task).__name__}, not a Task")
    return task
