"""A task spec read from the store is never imported: `resume` takes only registered tasks, or a spec typed
with --task; the results tables (leaderboard, report) show such rows without their sizes."""
from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from einsearch.tasks import TaskError, get_task
from einsearch.search.loop import INTERRUPTED
from einsearch.search.run import SearchConfig
from einsearch.storage.store import Store
from tests.evaluators.helpers import small_arch

TASK = "toy-causal:vocab=16,seq=16"
PLANTED = "einsearch_planted_plugin"


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """An importable module that leaves a marker file behind if anything imports it."""
    marker = tmp_path / "imported.marker"
    (tmp_path / f"{PLANTED}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        "from einsearch.tasks.toy import ToyCausal\n"
        "def make():\n    return ToyCausal(vocab=16, seq=16)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(PLANTED, None)
    yield marker
    sys.modules.pop(PLANTED, None)


def _assert_not_imported(marker: Path) -> None:
    assert PLANTED not in sys.modules and not marker.exists()


def _stored_search(url: str, task: str, name: str = "s") -> None:
    config = SearchConfig(name=name, task=task, strategy="random", budget=2, steps=5, executor="fake")
    with Store.open(url) as store:
        store.create_search(name, task=task, strategy="random", config=asdict(config), budget=2)


def test_stored_factory_spec_is_refused_and_not_imported(cli, tmp_path, planted):
    url = f"sqlite:///{tmp_path / 'tampered.db'}"
    _stored_search(url, f"{PLANTED}:make")
    _assert_not_imported(planted)  # the store itself does not import what it is given
    result = cli("resume", "s", "--db", url)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert "not a registered task" in result.stderr and "--task" in result.stderr
    _assert_not_imported(planted)
    with Store.open(url, create=False) as store:
        assert store.evaluations("s") == []  # nothing ran


def test_stored_this_s_is_refused_before_import():
    sys.modules.pop("this", None)
    with pytest.raises(TaskError, match="not a registered task"):
        get_task("this:s", allow_factory=False)
    assert "this" not in sys.modules


def test_resume_with_a_typed_factory_task_runs(cli, tmp_path, planted):
    url = f"sqlite:///{tmp_path / 'typed.db'}"
    _stored_search(url, TASK)
    result = cli("resume", "s", "--db", url, "--task", f"{PLANTED}:make")
    assert result.exit_code == 0, result.output
    assert planted.exists()  # typed on the command line: imported, as asked
    with Store.open(url, create=False) as store:
        assert len(store.evaluations("s")) == 2


def test_resume_with_a_typed_task_of_another_search_is_refused(cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    _stored_search(url, TASK)
    result = cli("resume", "s", "--db", url, "--task", "toy-causal:vocab=32,seq=16")
    assert result.exit_code == 2 and "is not the task search 's' ran" in result.stderr


def test_interrupted_row_with_a_planted_task_reruns_on_the_search_task(cli, tmp_path, planted):
    url = f"sqlite:///{tmp_path / 'row.db'}"
    _stored_search(url, TASK)
    arch = small_arch("transformer", TASK, width=32)
    with Store.open(url) as store:
        eval_id = store.start_evaluation("s", {"arch": arch, "task": f"{PLANTED}:make", "steps": 5, "seed": 0})
        store.finish_evaluation(eval_id, {"status": "failed", "error": INTERRUPTED})
    result = cli("resume", "s", "--db", url)
    assert result.exit_code == 0, result.output
    _assert_not_imported(planted)
    with Store.open(url, create=False) as store:
        rerun = [r for r in store.evaluations("s") if r.id != eval_id and r.arch == str(arch)]
    assert rerun and all(r.task == get_task(TASK).spec for r in rerun)


def test_non_callable_factory_is_one_line(cli):
    result = cli("check", "net(32, block(pre:rms, glu()))", "--task", "os:sep")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert "os.sep is a str, not a function or class" in result.stderr
    with pytest.raises(TaskError, match="returned a value of type int, not a Task"):
        get_task("os:getpid")


def test_results_tables_do_not_import_a_stored_factory_spec(cli, tmp_path, planted, monkeypatch):
    monkeypatch.setenv("EINSEARCH_MEMO", "0")  # computed now, not read from an earlier run's memo
    url = f"sqlite:///{tmp_path / 'tampered.db'}"
    spec = f"{PLANTED}:make"
    with Store.open(url) as store:
        store.create_search("s", task=spec, strategy="random", budget=1)
        arch = "net(32, block(pre:rms, attention(heads=4)), block(pre:rms, glu()))"
        evaluation = store.start_evaluation("s", {"arch": arch, "task": spec, "steps": 5, "seed": 0})
        store.finish_evaluation(evaluation, {"status": "ok", "metric_name": "accuracy", "metric": 0.5, "params": 10})
    result = cli("leaderboard", "--db", url, "--format", "json")
    assert result.exit_code == 0, result.output
    assert '"state_size": null' in result.stdout
    assert cli("report", "s", "-o", str(tmp_path / "r.html"), "--db", url).exit_code == 0
    _assert_not_imported(planted)
