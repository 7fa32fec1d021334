"""Two processes writing one SQLite file at once (creating it, too) lose nothing."""
from __future__ import annotations

import multiprocessing as mp

from einsearch.storage import Store

TASK = "toy-causal:vocab=64,seq=32"
PER_WORKER = 40
SHARED_ARCHS = 10  # both workers record these: concurrent get-or-create of the same rows


def _arch(i: int) -> dict:
    return {"text": f"net(64, arch{i})", "hash": f"{i:016x}", "ops": ["mixer_a" if i % 2 else "mixer_b"]}


def _worker(url: str, name: str, offset: int, start, errors) -> None:
    try:
        start.wait(timeout=60)
        with Store.open(url) as store:  # both open (and migrate) the new file at the same moment
            store.create_search(name, task=TASK, strategy="random")
            for i in range(PER_WORKER):
                arch = _arch(i % SHARED_ARCHS if i % 2 else offset + i)
                parents = [_arch((i + 1) % SHARED_ARCHS)] if i % 3 == 0 else []
                eval_id = store.start_evaluation(name, {"arch": arch, "task": TASK, "steps": 10, "seed": i,
                                                        "parents": parents, "op": "mutate"})
                store.finish_evaluation(eval_id, {"status": "ok", "metric_name": "accuracy", "metric": i / 100,
                                                  "curve": [[10, i / 100]], "params": 100 + i})
    except BaseException as err:  # reported to the parent, which fails the test with it
        errors.put(f"{name}: {type(err).__name__}: {err}")
        raise


def test_two_processes_one_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    ctx = mp.get_context("spawn")
    start, errors = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, name, offset, start, errors))
             for name, offset in (("first", 1000), ("second", 2000))]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert errors.empty(), errors.get()
    assert [proc.exitcode for proc in procs] == [0, 0]
    with Store.open(url) as store:
        for name, offset in (("first", 1000), ("second", 2000)):
            evals = store.evaluations(name)
            assert len(evals) == PER_WORKER and all(e.status == "ok" for e in evals)
            assert sorted(e.seed for e in evals) == list(range(PER_WORKER))
            assert {e.arch_hash for e in evals if e.seed % 2 == 0} == {f"{offset + i:016x}"
                                                                      for i in range(0, PER_WORKER, 2)}
        summaries = {s.search.name: s for s in store.searches()}
        assert {n: s.completed for n, s in summaries.items()} == {"first": PER_WORKER, "second": PER_WORKER}
        # each shared architecture exists once, whoever inserted it
        shared = {i % SHARED_ARCHS for i in range(1, PER_WORKER, 2)}
        assert len(store.leaderboard(top=None)) == len(shared) + PER_WORKER
        parents, _ = store.lineage(_arch(3)["hash"])
        assert {(p.parent_hash, p.search) for p in parents} == {(_arch(4)["hash"], "first"),
                                                               (_arch(4)["hash"], "second")}
