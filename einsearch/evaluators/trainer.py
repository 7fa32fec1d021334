"""Train one model on one task within budgets, and report a `Result` (failures included).

`evaluate(candidate)` checks the parameter budget, builds the architecture for the task and calls
`train_model`, which takes any `nn.Module` (tests drive it with hand-made models). Every way a run
can go wrong (an exception in a primitive, NaN/inf loss, divergence, out of memory, the wall-clock
limit) becomes `Result(status="failed", error=<one line>)`, never an exception.

Recipe: AdamW (weight decay on matrices only), linear warm-up then cosine decay to 10% of the peak
rate or a constant rate, gradient clipping at 1.0, loss = task loss + the primitives' auxiliary
losses; steps, batch, rate, schedule, warm-up and betas come from the task's `recipe`
(`TrainConfig.for_task`), overrides win; bf16 autocast on CUDA; on the CPU a run is a pure
function of (architecture, task, steps, seed).
After training, a successful run also reports the task's `extra_metrics` and, for a model with
attention layers, their patterns (local / hybrid / global, see `patterns.py`).
"""
from __future__ import annotations

import logging
import math
import resource
import socket
import time
from contextlib import nullcontext
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from einsearch.errors import EinsearchError
from einsearch.evaluators.aggregate import evaluate_members
from einsearch.evaluators.seeds import evaluate_seeds
from einsearch.evaluators.allocator import keep_freed_memory
from einsearch.tasks import Batch, Task, get_task
from einsearch.evaluators.types import Candidate, Result, one_line
from einsearch.ops.registry import aux_loss

log = logging.getLogger(__name__)

DIVERGENCE_FACTOR = 4.0  # a smoothed loss this many times the first one (plus 1 nat) has diverged


class TrainingFailed(EinsearchError, RuntimeError):
    """A run that cannot go on (non-finite loss, divergence, a budget exceeded): its message is the reason."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int | None = None  # steps; default min(100, steps // 10)
    schedule: str = "cosine"  # after warm-up: "cosine" (down to 10% of lr) or "constant"
    betas: tuple[float, float] = (0.9, 0.95)
    clip: float = 1.0
    eval_every: int | None = None  # default: about 10 curve points
    eval_batches: int = 4  # held-out batches scored at each curve point
    seed: int = 0
    time_limit_s: float | None = None
    max_mem_bytes: int | None = None  # GPU only

    @classmethod
    def for_task(cls, task: Task, steps: int | None = None, **overrides: Any) -> "TrainConfig":
        """The task's recipe (steps when not given, batch, lr, schedule, warm-up, betas) and its
        `eval_batches`, then overrides (None leaves the recipe's value)."""
        recipe = task.recipe
        base: dict[str, Any] = {name: getattr(recipe, name)
                                for name in ("batch_size", "lr", "schedule", "warmup", "betas")}
        if hasattr(task, "eval_batches"):
            base["eval_batches"] = task.eval_batches
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(steps=recipe.steps if steps is None else steps, **base)


def _autocast(device: torch.device) -> Any:
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def _to(batch: Batch, device: torch.device) -> Batch:
    moved = {name: getattr(batch, name).to(device) if isinstance(getattr(batch, name), torch.Tensor)
             else getattr(batch, name) for name in batch.__dataclass_fields__}
    return type(batch)(**moved)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))


def lr_factor(step: int, steps: int, warmup: int, schedule: str = "cosine") -> float:
    """Multiplier of the peak rate at `step` (0-based): linear warm-up, then cosine down to 0.1
    (schedule "cosine") or the peak rate to the end ("constant")."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def score_batches(model: nn.Module, task: Task, batches: list[Batch], device: torch.device) -> float:
    """The task metric over held-out batches (sum over items / number of items)."""
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        with _autocast(device):
            logits = model(batch.inputs)
        part, n = task.score(logits.float(), batch)
        total, count = total + part, count + n
    model.train()
    return total / max(count, 1)


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # process peak RSS (Linux: KiB)


def _out_of_memory(err: BaseException) -> bool:
    """An allocation failure: CUDA's 'out of memory', the CPU allocator's "can't allocate memory"."""
    text = str(err)
    return isinstance(err, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def _better(task: Task, a: float, b: float | None) -> bool:
    return b is None or (a > b if task.higher_is_better else a < b)


def train_model(model: nn.Module, task: Task | str, cfg: TrainConfig, *, device: str | torch.device = "cpu",
                started: float | None = None) -> Result:
    """Train `model` on `task` for `cfg.steps` steps; never raises for a failing run.

    `started` (a `time.perf_counter()` value) lets the caller count its build time in `wall_time_s`."""
    started = time.perf_counter() if started is None else started
    keep_freed_memory()
    task = get_task(task)
    device = torch.device(device)
    base = {"metric_name": task.metric, "device": str(device), "host": socket.gethostname(),
            "params": sum(p.numel() for p in model.parameters())}
    curve: list[tuple[int, float]] = []
    losses: list[float] = []
    train_time = eval_time = 0.0
    try:
        torch.manual_seed(cfg.seed)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        model = model.to(device)
        held_out = task.batches("valid", cfg.batch_size, seed=0)  # same for every candidate
        eval_set = [_to(next(held_out), device) for _ in range(cfg.eval_batches)]
        data: Iterator[Batch] = task.batches("train", cfg.batch_size, seed=cfg.seed)
        opt = _optimizer(model, cfg)
        warmup = cfg.warmup if cfg.warmup is not None else min(100, cfg.steps // 10)
        every = cfg.eval_every or max(1, cfg.steps // 10)
        tokens = 0
        model.train()
        for step in range(cfg.steps):
            batch = _to(next(data), device)
            tick = time.perf_counter()
            for group in opt.param_groups:
                group["lr"] = cfg.lr * lr_factor(step, cfg.steps, warmup, cfg.schedule)
            with _autocast(device):
                logits = model(batch.inputs)
                loss = task.loss(logits.float(), batch)
                extra = aux_loss(model)
                total = loss if extra is None else loss + extra
            opt.zero_grad(set_to_none=True)
            total.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            value = float(loss.detach())
            train_time += time.perf_counter() - tick
            tokens += batch.inputs.shape[0] * task.seq_len
            _check_step(value, step, losses, cfg, device, started)
            if (step + 1) % every == 0 or step + 1 == cfg.steps:
                tick = time.perf_counter()
                curve.append((step + 1, score_batches(model, task, eval_set, device)))
                eval_time += time.perf_counter() - tick
    except TrainingFailed as err:
        return Result.failure(str(err), curve=curve, train_time_s=train_time,
                              wall_time_s=time.perf_counter() - started, **base)
    except torch.cuda.OutOfMemoryError as err:
        return Result.failure(f"out of memory: {err}", curve=curve, wall_time_s=time.perf_counter() - started, **base)
    except Exception as err:  # an exception in a primitive or a task: the candidate fails, the search goes on
        log.debug("training failed", exc_info=True)
        reason = f"out of memory: {err}" if _out_of_memory(err) else f"{type(err).__name__}: {err}"
        return Result.failure(reason, curve=curve, train_time_s=train_time,
                              wall_time_s=time.perf_counter() - started, **base)
    metrics = [m for _, m in curve]
    best = None
    for m in metrics:
        best = m if _better(task, m, best) else best
    extra_metrics, patterns = _after_training(model, task, metrics[-1], eval_set)
    return Result(status="ok", metric=metrics[-1], best_metric=best, loss=sum(losses[-10:]) / len(losses[-10:]),
                  curve=curve, train_time_s=train_time, eval_time_s=eval_time,
                  wall_time_s=time.perf_counter() - started, tokens_per_s=tokens / train_time if train_time > 0 else None,
                  peak_mem_bytes=_peak_memory(device), extra_metrics=extra_metrics, patterns=patterns, **base)


def _after_training(model: nn.Module, task: Task, metric: float,
                    eval_set: list[Batch]) -> tuple[dict[str, float], list[dict[str, Any]] | None]:
    """The task's extra figures and the attention patterns (two held-out batches); a failure here is
    logged and leaves them out, never fails the candidate."""
    from einsearch.evaluators import patterns

    try:
        extra = task.extra_metrics(metric, eval_set)
    except Exception:
        log.warning("extra metrics of %s failed", task.spec, exc_info=True)
        extra = {}
    try:
        found = patterns.analyse(model, [b.inputs for b in eval_set[:2]], getattr(task, "token_grid", None))
    except Exception:
        log.warning("attention-pattern analysis failed", exc_info=True)
        found = None
    return extra, found


def _check_step(value: float, step: int, losses: list[float], cfg: TrainConfig, device: torch.device,
                started: float) -> None:
    """Raise TrainingFailed when the run must stop after `step` (0-based)."""
    if not math.isfinite(value):
        raise TrainingFailed(f"non-finite loss ({value}) at step {step + 1}")
    losses.append(value)
    recent = sum(losses[-10:]) / len(losses[-10:])
    if len(losses) >= 10 and recent > DIVERGENCE_FACTOR * losses[0] + 1.0:
        raise TrainingFailed(f"loss diverged: {recent:.3g} at step {step + 1} (started at {losses[0]:.3g})")
    if cfg.time_limit_s is not None and time.perf_counter() - started > cfg.time_limit_s:
        raise TrainingFailed(f"time limit {cfg.time_limit_s:g}s reached at step {step + 1} of {cfg.steps}")
    if cfg.max_mem_bytes is not None and device.type == "cuda":
        used = torch.cuda.max_memory_allocated(device)
        if used > cfg.max_mem_bytes:
            raise TrainingFailed(f"memory limit: {used} bytes used, limit {cfg.max_mem_bytes}")


def evaluate(candidate: Candidate, *, device: str | None = None, time_limit_s: float | None = None,
             max_params: int | None = None, eval_every: int | None = None, max_mem: int | None = None,
             keep_weights: bool = False, train_seeds: int = 1, **overrides: Any) -> Result:
    """Train `candidate` and report its Result; `overrides` replace TrainConfig fields (lr, batch_size, ...).

    A task with `members()` (an aggregate such as `mad`) trains one model per member task, each for
    `candidate.steps` steps, and reports the mean of their final metrics. With `train_seeds` > 1 the
    candidate is trained on that many consecutive seeds and scored by the mean (`seeds.evaluate_seeds`)."""
    from einsearch.grammar import ArchError, build, check

    started = time.perf_counter()
    if candidate.lr is not None:  # a rate of an --lr-grid: the candidate's own rate wins
        overrides["lr"] = candidate.lr
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # What each run of several (seeds, member tasks) is handed.
    options = dict(device=device, time_limit_s=time_limit_s, max_params=max_params, eval_every=eval_every,
                   max_mem=max_mem, **overrides)
    if train_seeds > 1:
        return evaluate_seeds(candidate, train_seeds, lambda run: evaluate(
            run, keep_weights=keep_weights and run.seed == candidate.seed, **options))  # the first seed's are kept
    try:
        task = get_task(candidate.task)
    except ValueError as err:
        return Result.failure(f"bad task: {err}", wall_time_s=time.perf_counter() - started)
    if hasattr(task, "members"):
        return evaluate_members(candidate, task, lambda member: evaluate(member, **options))
    try:
        report = check(candidate.arch, task)
    except ArchError as err:
        return Result.failure(f"bad architecture: {err}", metric_name=task.metric,
                              wall_time_s=time.perf_counter() - started)
    extra = {"flops_per_token": report.flops_per_token}
    if max_params is not None and report.params > max_params:
        return Result.failure(f"{report.params} parameters exceed the limit {max_params}", metric_name=task.metric,
                              params=report.params, wall_time_s=time.perf_counter() - started, **extra)
    cfg = TrainConfig.for_task(task, candidate.steps, seed=candidate.seed, eval_every=eval_every,
                               time_limit_s=time_limit_s, max_mem_bytes=max_mem, **overrides)
    if device.startswith("cuda") and max_mem is not None:
        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, max_mem / total), torch.device(device))
    try:
        torch.manual_seed(candidate.seed)
        model = build(candidate.arch, task)
    except Exception as err:
        return Result.failure(f"build failed: {type(err).__name__}: {one_line(str(err))}", metric_name=task.metric,
                              params=report.params, wall_time_s=time.perf_counter() - started, **extra)
    result = train_model(model, task, cfg, device=device, started=started)
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()} if keep_weights and result.ok else None
    return dataclasses.replace(Result.from_dict({**result.to_dict(), **extra, "curve": result.curve}), weights=weights)
