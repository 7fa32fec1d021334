"""Per-candidate resources for Ray: the memory estimate, and the reason of a candidate lost with its node."""
from __future__ import annotations

import pytest

from einsearch.evaluators.resources import WORKER_BYTES, memory_bytes
from einsearch.evaluators.types import Candidate

SMALL = "net(64, block(pre:rms, attention(heads=4)), block(pre:rms, glu()))"
LARGE = "net(256, repeat(4, block(pre:rms, attention(heads=4)), block(pre:rms, glu())))"


def test_memory_grows_with_parameters_and_activations():
    small = memory_bytes(Candidate(SMALL, "toy-causal:vocab=64,seq=32", steps=10))
    large = memory_bytes(Candidate(LARGE, "toy-causal:vocab=64,seq=32", steps=10))
    longer = memory_bytes(Candidate(LARGE, "toy-causal:vocab=64,seq=256", steps=10))
    assert WORKER_BYTES < small < large < longer
    assert large - WORKER_BYTES > 16 * 4 * 256 * 256  # at least the parameters of one 256-wide layer, x4 copies


def test_memory_floor_when_the_task_is_unknown():
    assert memory_bytes(Candidate(SMALL, "nosuchtask", steps=10)) == WORKER_BYTES


def test_a_dead_node_reads_node_lost():
    rex = pytest.importorskip("ray.exceptions")
    from einsearch.evaluators.executor_ray import _reason

    assert _reason(rex.NodeDiedError("node abc died"), 1).startswith("node lost after 2 attempt(s)")
    assert _reason(rex.WorkerCrashedError(), 1).startswith("worker died")
