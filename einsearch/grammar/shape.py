"""What the grammar needs of a task: its shape, never its data or training.

`einsearch.tasks.Task` satisfies this protocol; the grammar takes resolved tasks only (names are
resolved once, at the edge: the CLI, the search, or `einsearch.check`/`build`/`sample`).
"""
from __future__ import annotations

from typing import Protocol

from torch import nn


class TaskShape(Protocol):
    name: str
    causal: bool  # output t may depend on inputs up to t only

    @property
    def spec(self) -> str: ...  # canonical spec string (name and parameters)

    @property
    def seq_len(self) -> int: ...

    def make_stem(self, dim: int) -> nn.Module: ...  # inputs -> (B, L, dim)

    def make_head(self, dim: int) -> nn.Module: ...  # (B, L, dim) -> outputs
