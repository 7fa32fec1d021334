"""In-context linear regression (Garg et al. 2022; He et al. 2025, multi-head softmax attention).

Each sequence draws its own task w ~ N(0, I_d) and `pairs` examples x_i ~ N(0, I_d),
y_i = w.x_i + e_i with e_i ~ N(0, noise^2). Tokens interleave x_1, y_1, x_2, y_2, ...; each token is a
(d+1)-vector: [x_i, 0] for an x, [0, ..., 0, y_i] for a y. The model reads the sequence causally and
predicts y_i at the position of x_i, so it sees x_i and the earlier pairs only. Loss and metric: the
mean squared error over those positions (lower is better).

Reported beside it (in `Result.extra_metrics`): on the same held-out sequences, the MSE of the
Bayes-optimal estimator for this prior, the posterior mean (ridge regression with lambda = noise^2,
the minimum-norm interpolant when noise = 0) fitted to the earlier pairs only; and the ratio of the
two. A model that predicts 0 scores about d + noise^2.

Specs: `icl-regression:d=8,pairs=16,noise=0.25` (the default); `icl-regression-tiny` (d 4, 6 pairs)
is for tests.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Iterator

import torch
from torch import nn

from einsearch.tasks.base import Batch, Task, TaskError
from einsearch.tasks.registry import register_task
from einsearch.tasks.stems import ScalarHead, VectorStem


def icl_batch(batch: int, d: int, pairs: int, noise: float,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tokens (B, 2N, d+1), targets y (B, N), tasks w (B, d)), float32."""
    w = torch.randn(batch, d, generator=gen)  # (B, d): one task per sequence
    x = torch.randn(batch, pairs, d, generator=gen)  # (B, N, d)
    y = (x @ w[:, :, None])[..., 0] + noise * torch.randn(batch, pairs, generator=gen)  # (B, N)
    tokens = torch.zeros(batch, 2 * pairs, d + 1)
    tokens[:, 0::2, :d] = x  # x_i at position 2i
    tokens[:, 1::2, d] = y  # y_i at position 2i + 1
    return tokens, y, w


def split_tokens(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens (B, 2N, d+1) -> x (B, N, d), y (B, N)."""
    return tokens[:, 0::2, :-1], tokens[:, 1::2, -1]


def ridge_predictions(x: torch.Tensor, y: torch.Tensor, noise: float) -> torch.Tensor:
    """Posterior-mean prediction of y_i from pairs 0..i-1 under w ~ N(0, I), noise std `noise`.

    x (B, N, d), y (B, N) -> (B, N), in float64. Position 0 (no earlier pair) predicts 0.
    """
    x, y = x.double(), y.double()
    b, n, d = x.shape
    preds = torch.zeros(b, n, dtype=torch.float64, device=x.device)
    eye = torch.eye(d, dtype=torch.float64, device=x.device)
    for i in range(1, n):
        xs, ys = x[:, :i], y[:, :i]  # (B, i, d), (B, i)
        if noise > 0:  # w_hat = (X^T X + s^2 I)^-1 X^T y
            gram = xs.transpose(1, 2) @ xs + noise ** 2 * eye
            w_hat = torch.linalg.solve(gram, (xs.transpose(1, 2) @ ys[..., None]))[..., 0]
        else:  # the noiseless limit: the minimum-norm solution
            w_hat = (torch.linalg.pinv(xs) @ ys[..., None])[..., 0]
        preds[:, i] = (x[:, i] * w_hat).sum(-1)
    return preds


@register_task("icl-regression")
@dataclass(frozen=True)
class ICLRegression(Task):
    """In-context linear regression: MSE of y_i predicted at x_i from the earlier pairs."""

    causal = True
    metric = "mse"
    higher_is_better = False
    batch_size: ClassVar[int] = 64
    lr: ClassVar[float] = 3e-3
    eval_batches: ClassVar[int] = 16

    d: int = 8
    pairs: int = 16
    noise: float = 0.25

    def __post_init__(self) -> None:
        if self.d < 1 or self.pairs < 1:
            raise TaskError(f"needs d >= 1 and pairs >= 1, got d={self.d}, pairs={self.pairs}")
        if not self.noise >= 0:
            raise TaskError(f"noise must be >= 0, got {self.noise}")

    @property
    def spec(self) -> str:  # presets are spelled as the explicit form
        params = ",".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self))
        return f"icl-regression:{params}"

    @property
    def seq_len(self) -> int:
        return 2 * self.pairs

    def make_stem(self, dim: int) -> nn.Module:
        return VectorStem(self.d + 1, self.seq_len, dim)

    def make_head(self, dim: int) -> nn.Module:
        return ScalarHead(dim)

    def example_input(self, batch: int = 2) -> torch.Tensor:
        return icl_batch(batch, self.d, self.pairs, self.noise, torch.Generator().manual_seed(0))[0]

    def output_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.seq_len)

    def batches(self, split: str, batch_size: int, seed: int) -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(seed * 2 + (split != "train"))
        while True:
            tokens, y, _ = icl_batch(batch_size, self.d, self.pairs, self.noise, gen)
            yield Batch(tokens, y)

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        return nn.functional.mse_loss(logits[:, 0::2], batch.targets)  # predictions at the x positions

    def score(self, logits: torch.Tensor, batch: Batch) -> tuple[float, int]:
        err = (logits[:, 0::2].double() - batch.targets.double()) ** 2
        return float(err.sum()), err.numel()

    def extra_metrics(self, metric: float, batches: list[Batch]) -> dict[str, float]:
        """The ridge (Bayes-optimal) MSE on the same held-out sequences, and metric / ridge MSE."""
        total, count = 0.0, 0
        for batch in batches:
            x, y = split_tokens(batch.inputs.cpu())
            err = (ridge_predictions(x, y, self.noise) - batch.targets.cpu().double()) ** 2
            total, count = total + float(err.sum()), count + err.numel()
        ridge = total / max(count, 1)
        return {"ridge_mse": ridge, "mse_ratio": metric / ridge if ridge > 0 else float("inf")}


@register_task("icl-regression-tiny")
@dataclass(frozen=True)
class ICLRegressionTiny(ICLRegression):
    """In-context linear regression at d=4 with 6 pairs: for tests."""

    d: int = 4
    pairs: int = 6
