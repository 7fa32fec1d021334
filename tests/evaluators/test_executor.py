"""Local and Ray executors pass the same tests; Ray starts once for the module (it is slow to start)."""
import pytest
import torch

from einsearch.evaluators.executor_local import LocalExecutor
from einsearch.evaluators.types import Candidate
from tests.evaluators.helpers import small_arch

TASK = "toy-causal:vocab=16,seq=16"
FAULTY = "tests.evaluators.faulty_task:make_"


@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray")
    from einsearch.evaluators.executor_ray import RayExecutor

    executor = RayExecutor(workers=2, num_cpus=1, max_retries=1, device="cpu", eval_every=5, keep_weights=True)
    yield executor
    executor.shutdown()


@pytest.fixture(params=["local", "ray"])
def executor(request):
    if request.param == "local":
        return LocalExecutor(device="cpu", eval_every=5)
    return request.getfixturevalue("ray_executor")


def _drain(executor, n):
    done = {}
    while len(done) < n:
        batch = executor.wait(timeout=120)
        assert batch, "executor timed out"
        done.update(batch)
    return done


def test_results_come_back_for_every_key(executor):
    arch = small_arch("transformer", TASK, width=32)
    keys = [executor.submit(Candidate(arch, TASK, steps, seed=1)) for steps in (5, 10)]
    done = _drain(executor, 2)
    assert sorted(done) == sorted(keys)
    assert all(r.status == "ok" and r.metric_name == "accuracy" for r in done.values())
    assert [s for s, _ in done[keys[1]].curve] == [5, 10]
    assert executor.wait(timeout=0) == []


def test_same_candidate_same_result_in_both_executors(ray_executor):
    arch = small_arch("transformer", TASK, width=32)
    local = LocalExecutor(device="cpu", eval_every=5, keep_weights=True)
    local.submit(Candidate(arch, TASK, 10, seed=2))
    ray_executor.submit(Candidate(arch, TASK, 10, seed=2))
    (_, a), = local.wait()
    (_, b), = _drain(ray_executor, 1).items()
    assert a.curve == b.curve and a.loss == pytest.approx(b.loss, rel=1e-5)
    assert a.weights.keys() == b.weights.keys()  # trained weights come back from the Ray worker too
    assert all(torch.allclose(a.weights[k], b.weights[k], atol=1e-5) for k in a.weights)


def test_failures_are_isolated_in_ray(ray_executor):
    arch = small_arch("transformer", TASK, width=32)
    keys = {ray_executor.submit(Candidate(arch, FAULTY + mode, 5)): mode for mode in ("raise", "nan", "kill")}
    good = ray_executor.submit(Candidate(arch, TASK, 5))
    done = _drain(ray_executor, 4)
    assert done[good].status == "ok"
    errors = {keys[k]: r.error for k, r in done.items() if k in keys}
    assert all(done[k].status == "failed" for k in keys)
    assert errors["raise"] == "RuntimeError: primitive exploded"
    assert errors["nan"].startswith("non-finite loss (nan) at step 1")
    assert errors["kill"].startswith("worker died after 2 attempt(s)")


def test_failures_are_results_locally():
    arch = small_arch("transformer", TASK, width=32)
    local = LocalExecutor(device="cpu")
    keys = {local.submit(Candidate(arch, FAULTY + mode, 5)): mode for mode in ("raise", "nan")}
    done = _drain(local, 2)
    assert {keys[k]: r.error.split(":")[0] for k, r in done.items()} == {"raise": "RuntimeError",
                                                                          "nan": "non-finite loss (nan) at step 1"}


def test_dead_worker_is_stored_as_failed_and_the_search_goes_on(ray_executor, tmp_path):
    from einsearch.search.loop import SearchLoop
    from einsearch.storage.store import Store
    from tests.evaluators.helpers import ScriptedStrategy

    arch = small_arch("transformer", TASK, width=32)
    script = [Candidate(arch, FAULTY + "kill", 5), Candidate(arch, TASK, 5, seed=7), Candidate(arch, TASK, 5, seed=8)]
    with Store.open(f"sqlite:///{tmp_path / 'dead.db'}") as store:
        store.create_search("dead", task=TASK, strategy="scripted", budget=3)
        progress = SearchLoop(ScriptedStrategy(script), ray_executor, store, search="dead", budget=3, workers=2).run()
        records = {r.task: r for r in store.evaluations("dead")}
        assert progress.done == 3 and progress.failed == 1 and len(store.evaluations("dead")) == 3
        assert records[FAULTY + "kill"].status == "failed"
        assert records[FAULTY + "kill"].error.startswith("worker died after 2 attempt(s)")
        assert [r.status for r in store.evaluations("dead") if r.task == TASK] == ["ok", "ok"]


def test_make_executor_passes_budgets_and_refuses_unknown_options():
    from einsearch.errors import UsageError
    from einsearch.evaluators.executor import make_executor
    from einsearch.evaluators.executor_fake import FakeExecutor

    local = make_executor("local", time_limit_s=5.0, max_params=1000, address="ignored-by-local")
    assert local.budgets.time_limit_s == 5.0 and local.budgets.max_params == 1000
    assert isinstance(make_executor("fake:0.5"), FakeExecutor)
    with pytest.raises(UsageError, match="unknown option 'time_limit'"):
        make_executor("local", time_limit=5.0)  # the old name would have been dropped silently
    with pytest.raises(UsageError, match="unknown executor 'slurm'"):
        make_executor("slurm")
