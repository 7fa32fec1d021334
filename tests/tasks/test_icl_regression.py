import pytest
import torch

from einsearch.tasks import TaskError, get_task
from einsearch.tasks.icl_regression import icl_batch, ridge_predictions, split_tokens


def test_each_sequence_is_its_own_linear_task_interleaved():
    d, pairs, noise = 5, 7, 0.1
    tokens, y, w = icl_batch(64, d, pairs, noise, torch.Generator().manual_seed(0))
    assert tokens.shape == (64, 2 * pairs, d + 1) and y.shape == (64, pairs) and w.shape == (64, d)
    assert (tokens[:, 0::2, d] == 0).all() and (tokens[:, 1::2, :d] == 0).all()  # x tokens, y tokens
    x, y_tokens = split_tokens(tokens)
    assert torch.equal(y_tokens, y)
    residual = y - (x @ w[:, :, None])[..., 0]  # y = w.x + noise, with this sequence's own w
    assert abs(float(residual.std()) - noise) < 0.02 and abs(float(residual.mean())) < 0.02
    # the tasks differ across sequences: another sequence's w explains y badly
    other = y - (x @ w.roll(1, 0)[:, :, None])[..., 0]
    assert float(other.std()) > 10 * noise


def test_ridge_is_the_posterior_mean_and_improves_with_more_pairs():
    d, pairs, noise = 4, 12, 0.3
    tokens, y, w = icl_batch(2000, d, pairs, noise, torch.Generator().manual_seed(1))
    x, _ = split_tokens(tokens)
    pred = ridge_predictions(x, y, noise)
    # explicit posterior mean for one sequence at one position, written out
    i = 6
    xs, ys = x[3, :i].double(), y[3, :i].double()
    post = torch.linalg.inv(xs.T @ xs / noise ** 2 + torch.eye(d, dtype=torch.float64)) @ xs.T @ ys / noise ** 2
    torch.testing.assert_close(pred[3, i], x[3, i].double() @ post)
    assert (pred[:, 0] == 0).all()
    err = ((pred - y.double()) ** 2).mean(0)  # (pairs,): error by number of earlier pairs
    assert err[0] > 3.5 and err[-1] < 0.2  # prior variance d + noise^2 down to near the noise floor
    assert all(err[k + 1] < err[k] + 0.05 for k in range(pairs - 1))  # falls (up to sampling noise)
    assert err[-1] > noise ** 2 * 0.9  # never below the noise


def test_noiseless_ridge_is_exact_once_there_are_d_pairs():
    tokens, y, _ = icl_batch(16, 3, 6, 0.0, torch.Generator().manual_seed(2))
    x, _ = split_tokens(tokens)
    pred = ridge_predictions(x, y, 0.0)
    torch.testing.assert_close(pred[:, 3:], y[:, 3:].double(), atol=1e-6, rtol=0)


def test_task_loss_metric_and_extra_metrics():
    task = get_task("icl-regression-tiny")
    assert task.spec == "icl-regression:d=4,pairs=6,noise=0.25" and task.seq_len == 12 and not task.higher_is_better
    assert get_task("icl-regression").spec == "icl-regression:d=8,pairs=16,noise=0.25"
    batch = next(task.batches("valid", 8, seed=0))
    assert torch.equal(batch.inputs, next(task.batches("valid", 8, seed=0)).inputs)
    assert not torch.equal(batch.inputs, next(task.batches("train", 8, seed=0)).inputs)
    stem, head = task.make_stem(16), task.make_head(16)
    out = head(stem(batch.inputs))
    assert out.shape == task.output_shape(8)
    zeros = torch.zeros(8, 12)
    total, count = task.score(zeros, batch)
    assert count == 8 * 6 and total == pytest.approx(float((batch.targets.double() ** 2).sum()))
    assert float(task.loss(zeros, batch)) == pytest.approx(total / count, rel=1e-5)
    perfect = zeros.clone()
    perfect[:, 0::2] = batch.targets  # predictions read at the x positions only
    assert task.score(perfect, batch)[0] == 0
    extra = task.extra_metrics(2.0, [batch])
    x, y = split_tokens(batch.inputs)
    ridge = float(((ridge_predictions(x, y, 0.25) - y.double()) ** 2).mean())
    assert extra["ridge_mse"] == pytest.approx(ridge) and extra["mse_ratio"] == pytest.approx(2.0 / ridge)


def test_bad_parameters_are_clear_errors():
    with pytest.raises(TaskError, match="d >= 1 and pairs >= 1"):
        get_task("icl-regression:pairs=0")
    with pytest.raises(TaskError, match="noise must be >= 0"):
        get_task("icl-regression:noise=-1")


def test_a_model_trains_and_reports_ridge_beside_its_mse():
    from einsearch.evaluators.trainer import evaluate
    from einsearch.evaluators.types import Candidate
    from tests.evaluators.helpers import small_arch

    task = "icl-regression-tiny"
    result = evaluate(Candidate(small_arch("transformer", task), task, 30), device="cpu")
    assert result.ok and result.metric_name == "mse"
    assert set(result.extra_metrics) == {"ridge_mse", "mse_ratio"}
    assert result.extra_metrics["mse_ratio"] == pytest.approx(result.metric / result.extra_metrics["ridge_mse"])
    assert [p["op"] for p in result.patterns] == ["attention"]  # one attention layer analysed
