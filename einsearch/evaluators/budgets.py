"""Per-candidate budgets and options, the same for every executor."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Budgets:
    """What `evaluate` is handed besides the candidate."""

    device: str | None = None
    time_limit_s: float | None = None  # wall-clock seconds per candidate
    max_params: int | None = None
    eval_every: int | None = None
    max_mem: int | None = None
    keep_weights: bool = False  # return each successful candidate's trained weights with its result
    train_seeds: int = 1  # train each candidate on this many consecutive seeds; its metric is their mean

    def kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
