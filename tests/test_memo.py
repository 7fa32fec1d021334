"""Answers kept on disk per version of the code: reused by a later process, never read stale."""
import json

import pytest

from einsearch import memo


@pytest.fixture
def memo_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EINSEARCH_MEMO", str(tmp_path))
    return tmp_path


def test_an_answer_is_computed_once_and_read_back_by_a_new_process(memo_dir):
    calls = []
    first = memo.DiskMemo("demo")
    assert first.get("k", lambda: calls.append(1) or {"a": [1, 2]}) == {"a": [1, 2]}
    assert first.get("k", lambda: pytest.fail("computed twice")) == {"a": [1, 2]}
    first.save()
    assert first.path.parent == memo_dir and first.path.name == f"demo-{memo.code_fingerprint()}.json"
    later = memo.DiskMemo("demo")  # as a new process sees it: nothing in memory
    assert later.get("k", lambda: pytest.fail("not read from disk")) == {"a": [1, 2]} and calls == [1]


def test_the_caller_cannot_change_what_is_stored(memo_dir):
    store = memo.DiskMemo("demo")
    value = store.get("k", lambda: {"rows": [1]})
    value["rows"].append(2)
    assert store.get("k", lambda: None) == {"rows": [1]}


def test_another_version_of_the_code_does_not_read_it(memo_dir, monkeypatch):
    store = memo.DiskMemo("demo")
    store.get("k", lambda: 1)
    store.save()
    monkeypatch.setattr(memo, "code_fingerprint", lambda: "another-version")
    assert memo.DiskMemo("demo").get("k", lambda: 2) == 2


def test_the_fingerprint_follows_every_source_file(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "g.lark").write_text("start: 'a'\n")
    before = memo.source_fingerprint(tmp_path, "torch 1")
    (tmp_path / "g.lark").write_text("start: 'b'\n")
    edited = memo.source_fingerprint(tmp_path, "torch 1")
    assert len({before, edited, memo.source_fingerprint(tmp_path, "torch 2")}) == 3


def test_files_of_other_versions_go_once_a_week_old(memo_dir):
    import os
    import time

    old, recent = memo_dir / "demo-0000000000000000.json", memo_dir / "demo-1111111111111111.json"
    for path in (old, recent):
        path.write_text("{}")
    os.utime(old, (time.time() - 8 * 24 * 3600,) * 2)
    store = memo.DiskMemo("demo")
    store.get("k", lambda: 1)
    store.save()
    assert not old.exists() and recent.exists() and store.path.exists()


def test_a_damaged_file_is_recomputed(memo_dir):
    store = memo.DiskMemo("demo")
    store.path.write_text("{not json")
    assert store.get("k", lambda: 3) == 3
    store.save()
    assert json.loads(store.path.read_text()) == {"k": 3}


def test_values_that_cannot_be_stored_are_refused_at_once(memo_dir):
    with pytest.raises(TypeError):
        memo.DiskMemo("demo").get("k", lambda: object())


def test_off(monkeypatch):
    monkeypatch.setenv("EINSEARCH_MEMO", "0")
    store = memo.DiskMemo("demo")
    assert store.path is None and store.get("k", lambda: 4) == 4
    store.save()  # nothing to write to, no error
