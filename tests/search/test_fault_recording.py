"""Faults through the real trainer, executor, loop and store: a candidate whose loss is NaN or inf, that
runs out of memory or time, or that raises, is stored as failed with its reason, and the search goes on
to its budget. (A worker that dies: tests/evaluators/test_executor.py, on the Ray executor.)"""
from __future__ import annotations

import pytest

from einsearch.evaluators.executor_local import LocalExecutor
from einsearch.evaluators.types import Candidate
from einsearch.search.loop import SearchLoop
from einsearch.storage.store import Store
from einsearch.tasks import get_task
from tests.evaluators.helpers import ScriptedStrategy, small_arch

TASK = "toy-causal:vocab=16,seq=8"
FAULTY = "tests.evaluators.faulty_task:make_"
REASONS = {  # fault -> how its stored error begins
    "nan": "non-finite loss (nan) at step 1",
    "inf": "non-finite loss (inf) at step 1",
    "oom": "out of memory: ",
    "slow": "time limit 1s reached at step",
    "raise": "RuntimeError: primitive exploded",
}


@pytest.fixture
def store(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'faults.db'}") as opened:
        yield opened


def test_each_fault_is_stored_with_its_reason_and_the_search_goes_on(store):
    arch = small_arch("transformer", TASK, width=32)
    faults = list(REASONS)
    # ok, a fault, ok, a fault, ...: every fault is followed by a candidate that must still be trained
    script = [Candidate(arch, TASK, 4, seed=0)]
    for i, fault in enumerate(faults, start=1):
        script += [Candidate(arch, FAULTY + fault, 40), Candidate(arch, TASK, 4, seed=i)]
    store.create_search("faults", task=TASK, strategy="scripted", budget=len(script))
    strategy = ScriptedStrategy(script)
    loop = SearchLoop(strategy, LocalExecutor(device="cpu", time_limit_s=1.0), store, task=get_task(TASK), search="faults",
                      budget=len(script), workers=1)
    progress = loop.run()
    assert progress.done == len(script) and progress.failed == len(faults) and progress.stopped == "budget"
    records = store.evaluations("faults")
    assert len(records) == len(script)  # nothing dropped
    by_task = {r.task: r for r in records if r.task.startswith(FAULTY)}
    for fault, reason in REASONS.items():
        record = by_task[FAULTY + fault]
        assert record.status == "failed" and record.error.startswith(reason), (fault, record.error)
        assert "\n" not in record.error
    assert all(r.status == "ok" and r.metric is not None for r in records if r.task == TASK)
    assert [r.status for _, r in strategy.told] == [r.status for r in records]  # every result was told
