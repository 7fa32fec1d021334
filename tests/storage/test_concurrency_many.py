"""Four searches writing one SQLite file at once (evaluations under leases) while a reader polls it:
no row lost, no 'database is locked' error, and the reader only ever sees the counts grow."""
from __future__ import annotations

import multiprocessing as mp

from einsearch.storage import Store

TASK = "toy-causal:vocab=64,seq=32"
WRITERS, PER_WRITER = 4, 25


def _writer(url: str, name: str, start, errors) -> None:
    try:
        start.wait(timeout=60)
        with Store.open(url) as store:
            store.create_search(name, task=TASK, strategy="random")
            for i in range(PER_WRITER):
                arch = {"text": f"net(64, arch{name}{i})", "hash": f"{name}-{i:04d}", "ops": ["mixer"]}
                run = (arch["hash"], TASK, 10, 0)
                assert store.acquire_lease(run, name, 30, search=name)
                eval_id = store.start_evaluation(name, {"arch": arch, "task": TASK, "steps": 10, "seed": 0})
                store.attach_lease(run, name, eval_id)
                store.heartbeat(name, 30, search=name)
                store.finish_evaluation(eval_id, {"status": "ok", "metric_name": "accuracy", "metric": i / 100})
                store.release_lease(run, name)
    except BaseException as err:
        errors.put(f"{name}: {type(err).__name__}: {err}")
        raise


def _reader(url: str, start, stop, errors, polls) -> None:
    try:
        start.wait(timeout=60)
        seen = 0
        with Store.open(url) as store:
            while not stop.is_set():
                total = sum(s.completed for s in store.searches())
                store.leaderboard(top=5)
                if total < seen:
                    errors.put(f"reader: completed went down from {seen} to {total}")
                seen = total
                polls.value += 1
    except BaseException as err:
        errors.put(f"reader: {type(err).__name__}: {err}")
        raise


def test_four_writers_and_a_polling_reader(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    Store.open(url).close()  # the schema exists: the reader polls from the first moment
    ctx = mp.get_context("fork")  # the children only use the store: no re-import of torch
    start, stop, errors, polls = ctx.Barrier(WRITERS + 1), ctx.Event(), ctx.Queue(), ctx.Value("i", 0)
    writers = [ctx.Process(target=_writer, args=(url, f"s{k}", start, errors)) for k in range(WRITERS)]
    reader = ctx.Process(target=_reader, args=(url, start, stop, errors, polls))
    for proc in [*writers, reader]:
        proc.start()
    for proc in writers:
        proc.join(timeout=180)
    stop.set()
    reader.join(timeout=60)
    assert errors.empty(), errors.get()
    assert [proc.exitcode for proc in [*writers, reader]] == [0] * (WRITERS + 1)
    assert polls.value > 0
    with Store.open(url) as store:
        counts = {s.search.name: (s.completed, s.running) for s in store.searches()}
        assert counts == {f"s{k}": (PER_WRITER, 0) for k in range(WRITERS)}
        assert len(store.evaluations()) == WRITERS * PER_WRITER
        assert store.release_leases(owner="s0") == 0  # every lease was released
