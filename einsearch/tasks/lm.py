"""Byte-level causal language modelling; metric bits per byte on held-out files (lower is better).

Default corpus: the Python standard library's own source (`sysconfig.get_paths()['stdlib']`, `*.py`
without test suites and idlelib), present wherever Python is. `data=PATH` uses the user's text: a
directory (every file below it) or one file. Train and validation are split by file (a stable hash
of the file's relative path sends ~5% to validation), so no text is in both; a single file is split
by position instead (the last 5% is validation).

`lm` trains on 256-byte windows; `lm-tiny` (64 bytes, the first 40 stdlib files) is for tests.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator

import torch
from torch import nn

from einsearch.tasks.base import Batch, SequenceHead, Task, TaskError, TokenStem
from einsearch.tasks.registry import register_task

VALID_SHARE = 20  # one file in 20 goes to validation
EXCLUDED_DIRS = {"test", "tests", "idlelib", "site-packages", "__pycache__"}


def stdlib_files() -> list[Path]:
    """The standard library's Python sources (sorted), without test suites and idlelib."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_DIRS and not d.startswith("test"))
        out.extend(Path(folder) / f for f in sorted(files) if f.endswith(".py"))
    return out


def is_valid_file(relative: str) -> bool:
    """Stable, content-independent split: a file is in validation iff its path hashes to 0 mod 20."""
    return int(hashlib.sha256(relative.encode()).hexdigest()[:8], 16) % VALID_SHARE == 0


def split_files(root: Path, files: list[Path]) -> tuple[list[Path], list[Path]]:
    train, valid = [], []
    for path in files:
        (valid if is_valid_file(str(path.relative_to(root))) else train).append(path)
    return train, valid


@functools.lru_cache(maxsize=4)
def load_corpus(data: str, max_files: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train bytes, valid bytes) as uint8 tensors; files joined with a newline between them."""
    if data:
        root = Path(data).expanduser()
        if root.is_file():
            raw = root.read_bytes()
            cut = len(raw) - len(raw) // VALID_SHARE
            return _bytes(raw[:cut]), _bytes(raw[cut:])
        if not root.is_dir():
            raise TaskError(f"task lm: data={data!r} is neither a file nor a directory")
        files = sorted(p for p in root.rglob("*") if p.is_file())
    else:
        root, files = Path(sysconfig.get_paths()["stdlib"]), stdlib_files()
    if max_files:
        files = files[:max_files]
    train, valid = split_files(root, files)
    if not valid:  # a small directory: keep one file out for validation
        train, valid = train[:-1], train[-1:]
    if not train or not valid:
        raise TaskError(f"task lm: need at least two files under {root} to split train/validation")
    return _bytes(b"\n".join(p.read_bytes() for p in train)), _bytes(b"\n".join(p.read_bytes() for p in valid))


def _bytes(raw: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8)


@register_task("lm")
@dataclass(frozen=True)
class ByteLM(Task):
    """Byte-level language modelling (stdlib source or data=PATH): bits per byte on held-out files."""

    causal = True
    metric = "bits_per_byte"
    higher_is_better = False
    batch_size: ClassVar[int] = 32
    lr: ClassVar[float] = 2e-3
    eval_batches: ClassVar[int] = 8

    seq: int = 256
    data: str = ""  # a file or directory of text; empty: the Python standard library's source
    max_files: int = 0  # use only the first N files (0: all)

    def __post_init__(self) -> None:
        if self.seq < 2:
            raise TaskError(f"seq must be >= 2, got {self.seq}")
        if self.data and not Path(self.data).expanduser().exists():
            raise TaskError(f"data={self.data!r} does not exist")

    @property
    def seq_len(self) -> int:
        return self.seq

    def make_stem(self, dim: int) -> nn.Module:
        return TokenStem(256, dim)

    def make_head(self, dim: int) -> nn.Module:
        return SequenceHead(dim, 256)

    def example_input(self, batch: int = 2) -> torch.Tensor:
        return torch.randint(0, 256, (batch, self.seq))

    def output_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.seq, 256)

    def batches(self, split: str, batch_size: int, seed: int) -> Iterator[Batch]:
        train, valid = load_corpus(self.data, self.max_files)
        text = train if split == "train" else valid
        if len(text) <= self.seq + 1:
            raise TaskError(f"task lm: the {split} text has {len(text)} bytes, fewer than seq + 1 = {self.seq + 1}")
        gen = torch.Generator().manual_seed(seed * 2 + (split != "train"))
        offsets = torch.arange(self.seq + 1)
        while True:
            starts = torch.randint(0, len(text) - self.seq - 1, (batch_size, 1), generator=gen)
            windows = text[starts + offsets].long()  # (B, seq + 1)
            yield Batch(windows[:, :-1], windows[:, 1:])

    def score(self, logits: torch.Tensor, batch: Batch) -> tuple[float, int]:
        """(sum of bits over predicted bytes, number of bytes)."""
        nats = nn.functional.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), reduction="sum")
        return float(nats) / math.log(2), batch.targets.numel()


@register_task("lm-tiny")
@dataclass(frozen=True)
class ByteLMTiny(ByteLM):
    """Byte-level LM on the first 40 stdlib files with 64-byte windows: for tests."""

    seq: int = 64
    max_files: int = 40
