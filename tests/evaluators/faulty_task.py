"""Test-only tasks whose models misbehave, importable by Ray workers as `tests.evaluators.faulty_task:make_*`."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch
from torch import nn

from einsearch.tasks import SequenceHead
from einsearch.tasks.toy import ToyCausal


class FaultyHead(SequenceHead):
    def __init__(self, dim: int, n_out: int, mode: str):
        super().__init__(dim, n_out)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "raise":
            raise RuntimeError("primitive exploded")
        if self.mode == "kill":
            os._exit(3)  # the worker process dies without a word
        if self.mode == "oom":
            torch.empty(1 << 45)  # 128 TiB: the CPU allocator refuses it
        if self.mode == "slow":
            time.sleep(0.2)
            return super().forward(x)
        if self.mode == "inf":  # finite logits of +-3e38: the loss, their difference, overflows to inf
            return super().forward(x).sign() * 3e38
        return super().forward(x) * float("nan")


@dataclass(frozen=True)
class FaultyTask(ToyCausal):
    mode: str = "raise"

    def make_head(self, dim: int) -> nn.Module:
        return FaultyHead(dim, self.vocab, self.mode)


def make_raise() -> FaultyTask:
    return FaultyTask(vocab=16, seq=8, mode="raise")


def make_nan() -> FaultyTask:
    return FaultyTask(vocab=16, seq=8, mode="nan")


def make_kill() -> FaultyTask:
    return FaultyTask(vocab=16, seq=8, mode="kill")


def make_inf() -> FaultyTask:
    return FaultyTask(vocab=16, seq=8, mode="inf")


def make_oom() -> FaultyTask:
    return FaultyTask(vocab=16, seq=8, mode="oom")


def make_slow() -> FaultyTask:
    return FaultyTask(vocab=16, seq=8, mode="slow")
