"""A fast fake evaluator: a cheap deterministic score of an architecture, for testing and
benchmarking search strategies without training anything.

The score rewards what real sequence models tend to need, with smooth structure a search can climb:
a balance of token mixing and channel mixing blocks, depth, width, and a fixed per-primitive quality
(a hash of the primitive with its hyperparameters, so hyperparameter changes matter); plus a little
noise seeded by the architecture hash and the training seed, like a real run.
"""
from __future__ import annotations

import hashlib
import math
import time
from typing import Callable

from einsearch.tasks import Task, get_task
from einsearch.grammar import Arch, Node
from einsearch.grammar.tree import to_text
from einsearch.ops import get_op
from einsearch.ops.registry import TOKEN_CATEGORIES
from einsearch.evaluators.seeds import evaluate_seeds
from einsearch.evaluators.types import Candidate, Result


def unit_hash(text: str) -> float:
    """A stable number in [0, 1) from a string."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16 ** 12


def _blocks(arch: Arch) -> list[Node]:
    out: list[Node] = []
    for stage in arch.root.children:
        out.extend(list(stage.children) * stage.args[0] if stage.kind == "repeat" else [stage])
    return out


def _layer_kinds(layer: Node) -> tuple[bool, bool]:
    """(mixes tokens, mixes channels) for one block's layer."""
    if layer.kind == "op":
        token = get_op(layer.args[0]).category in TOKEN_CATEGORIES
        return token, not token
    if layer.kind == "parallel":
        parts = [_layer_kinds(child) for child in layer.children]
        return any(t for t, _ in parts), any(c for _, c in parts)
    mixes_tokens = any(n.kind in ("attend", "permute", "conv", "shift") for n in layer.walk())
    return mixes_tokens, True


def fake_metric(arch: Arch, seed: int = 0, noise: float = 0.02) -> float:
    """A score in about [0, 1]: higher is better."""
    blocks = _blocks(arch)
    kinds = [_layer_kinds(block.children[0]) for block in blocks]
    token = sum(t for t, _ in kinds) / len(kinds)
    channel = sum(c for _, c in kinds) / len(kinds)
    balance = 4 * token * channel if token + channel <= 1 else min(token, channel) ** 0.5
    ops = [n for n in arch.root.walk() if n.kind == "op"]
    quality = sum(unit_hash(to_text(n)) for n in ops) / len(ops) if ops else 0.0
    width = math.log2(arch.dim / 32) / 4  # 32 -> 0, 512 -> 1
    depth = min(len(blocks), 8) / 8
    jitter = noise * (unit_hash(f"{arch.hash}:{seed}") - 0.5)
    return 0.35 * balance + 0.3 * quality + 0.15 * width + 0.2 * depth + jitter


def fake_result(candidate: Candidate, task: Task | None = None) -> Result:
    """The fake evaluator's Result for a candidate; more steps give a slightly better score."""
    task = task or get_task(candidate.task)
    value = fake_metric(candidate.arch, candidate.seed) * (1 - 0.5 / math.sqrt(candidate.steps))
    if candidate.lr is not None:  # each architecture has its own best rate; a decade off costs 10%
        best = 10 ** (-3.5 + 1.5 * unit_hash(f"{candidate.arch.hash}:lr"))
        value *= max(0.0, 1 - 0.1 * abs(math.log10(candidate.lr / best)))
    if not task.higher_is_better:
        value = 1.0 - value
    return Result(status="ok", metric_name=task.metric, metric=value)


class FakeExecutor:
    """Runs `fake_result` with the loop's executor interface. Each job takes a simulated time drawn
    from its hash, so jobs finish out of submission order (as real ones do) yet deterministically;
    `delay` seconds of real sleep per job let tests interrupt a search mid-way."""

    def __init__(self, delay: float = 0.0, fail: Callable[[Candidate], bool] | None = None, train_seeds: int = 1):
        self.delay, self.fail, self.train_seeds = delay, fail, train_seeds
        self.clock = 0.0
        self.jobs: dict[int, tuple[float, Candidate]] = {}  # key -> (simulated finish time, candidate)
        self.submitted = 0

    def submit(self, candidate: Candidate) -> int:
        self.submitted += 1
        duration = 1.0 + unit_hash(f"{candidate.arch.hash}:{candidate.steps}")
        self.jobs[self.submitted] = (self.clock + duration, candidate)
        return self.submitted

    def wait(self, timeout: float | None = None) -> list[tuple[int, Result]]:
        if not self.jobs:
            return []
        key = min(self.jobs, key=lambda k: (self.jobs[k][0], k))
        finish, candidate = self.jobs.pop(key)
        self.clock = finish
        if self.delay:
            time.sleep(self.delay)
        if self.fail is not None and self.fail(candidate):
            return [(key, Result(status="failed", metric_name="", metric=None, error="fake failure"))]
        if self.train_seeds > 1:
            return [(key, evaluate_seeds(candidate, self.train_seeds, fake_result))]
        return [(key, fake_result(candidate))]

    def shutdown(self) -> None:
        self.jobs.clear()
