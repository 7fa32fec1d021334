"""What one candidate needs from a Ray node: the memory estimate behind Ray's `memory=` resource.

Ray packs tasks by declared resources only; without a memory figure, a node with free CPUs (or a
GPU split four ways) takes candidates until it swaps or is OOM-killed. The estimate is deliberately
coarse and on the safe side: a worker process's own footprint (Python, torch), the parameters four
times over (weights, gradients, AdamW's two moments) and the activations kept for the backward pass,
taken as ACTIVATION_FLOATS floats per token, per block and per unit of width, over the task's batch.
"""
from __future__ import annotations

import logging

from einsearch.evaluators.types import Candidate

log = logging.getLogger(__name__)

WORKER_BYTES = 512 * 2**20  # a Ray worker with torch imported, before any model
BYTES_PER_FLOAT = 4
PARAM_COPIES = 4  # weights, gradients, AdamW exp_avg and exp_avg_sq
ACTIVATION_FLOATS = 32  # saved for backward per token, block and channel (norms, projections, gates, ...)
DEFAULT_BATCH = 32


def memory_bytes(candidate: Candidate) -> int:
    """Bytes of memory to reserve for training `candidate` (never raises: a floor when unknown)."""
    from einsearch.grammar import check
    from einsearch.tasks import get_task

    try:
        task = get_task(candidate.task)
        report = check(candidate.arch, task)
        batch = int(getattr(task, "batch_size", DEFAULT_BATCH) or DEFAULT_BATCH)
        activations = batch * task.seq_len * max(1, report.depth) * report.dim * ACTIVATION_FLOATS
        return WORKER_BYTES + BYTES_PER_FLOAT * (PARAM_COPIES * report.params + activations)
    except Exception as err:  # the candidate fails in the worker with its own reason; reserve the floor
        log.debug("no memory estimate for %s: %s", candidate.arch.hash[:12], err)
        return WORKER_BYTES
