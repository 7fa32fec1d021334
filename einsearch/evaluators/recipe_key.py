"""The training recipe a result was measured under, as a short key for the results cache.

A stored result answers a new request only when it was trained the same way: same architecture, task,
steps, seed and rate (the cache key's columns) and the same recipe (batch, schedule, warm-up, betas,
weight decay, clipping, held-out batches) on the same number of training seeds (a `--train-seeds`
search scores the mean of several) under the same trainer revision. Changing a task's default
recipe, or the trainer's behaviour (bump `TRAINER_REVISION`), therefore retrains instead of serving a
result measured another way.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from einsearch.evaluators.trainer import TrainConfig
from einsearch.evaluators.types import Candidate
from einsearch.tasks import get_task

# Bump when a change to the trainer alters what the same recipe measures (init, loss, evaluation, ...).
TRAINER_REVISION = 1
_NOT_RECIPE = ("seed", "eval_every", "time_limit_s", "max_mem_bytes")  # how a run is watched, not trained


def recipe_key(candidate: Candidate, train_seeds: int = 1) -> str | None:
    """16 hex digits naming how `candidate` trains (per member task for an aggregate such as `mad`), on
    `train_seeds` seeds from its own; None when its task spec does not parse (that run fails before
    training, and is not cached)."""
    try:
        task = get_task(candidate.task)
    except ValueError:
        return None
    members = [member for _, member in task.members()] if hasattr(task, "members") else [task]
    configs = []
    for member in members:
        config = asdict(TrainConfig.for_task(member, candidate.steps, lr=candidate.lr))
        configs.append({name: value for name, value in config.items() if name not in _NOT_RECIPE})
    # One seed adds nothing, so results stored before --train-seeds existed keep their keys.
    what = [TRAINER_REVISION, configs] + ([{"train_seeds": train_seeds}] if train_seeds > 1 else [])
    payload = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
