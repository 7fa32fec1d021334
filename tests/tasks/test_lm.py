import math
from pathlib import Path

import pytest
import torch

from einsearch.tasks import TaskError, get_task
from einsearch.tasks.lm import is_valid_file, load_corpus, split_files, stdlib_files


def test_stdlib_split_is_by_file_and_disjoint():
    files = stdlib_files()
    assert len(files) > 300 and not any("idlelib" in p.parts or "test" in p.parts for p in files)
    train, valid = split_files(Path("/"), files)
    assert set(train).isdisjoint(valid) and set(train) | set(valid) == set(files)
    assert 0.02 < len(valid) / len(files) < 0.1
    tiny = get_task("lm-tiny")
    batch = next(tiny.batches("valid", 2, seed=0))
    assert batch.inputs.shape == (2, 64) and int(batch.inputs.max()) < 256


def test_user_directory_split_and_bits_per_byte(tmp_path):
    for i in range(40):
        (tmp_path / f"f{i}.txt").write_text(f"file {i} " * 50)
    train, valid = load_corpus(str(tmp_path), 0)
    valid_names = [f"f{i}.txt" for i in range(40) if is_valid_file(f"f{i}.txt")] or ["f39.txt"]
    assert len(valid) == sum(len(f"file {n[1:-4]} " * 50) for n in valid_names) + len(valid_names) - 1
    task = get_task(f"lm:seq=32,data={tmp_path}")
    batch = next(task.batches("train", 4, seed=0))
    assert batch.inputs.shape == (4, 32) and torch.equal(batch.inputs[:, 1:], batch.targets[:, :-1])
    uniform = torch.zeros(4, 32, 256)  # a uniform prediction costs exactly 8 bits per byte
    total, count = task.score(uniform, batch)
    assert count == 128 and math.isclose(total / count, 8.0, rel_tol=1e-5)
    assert task.metric == "bits_per_byte" and not task.higher_is_better


def test_missing_data_is_a_task_error():
    with pytest.raises(TaskError, match="does not exist"):
        get_task("lm:data=/no/such/place")
