import math

import torch

from einsearch.tasks import get_task
from einsearch.evaluators.trainer import TrainConfig, evaluate, lr_factor, train_model
from einsearch.evaluators.types import Candidate
from tests.evaluators.helpers import TinyCausalLM, small_arch

TASK = get_task("toy-causal:vocab=16,seq=16")


def _train(model, steps=40, **kw):
    cfg = TrainConfig(steps=steps, batch_size=16, lr=1e-2, eval_batches=2, **kw)
    return train_model(model, TASK, cfg, device="cpu")


def test_learns_and_reports_everything():
    torch.manual_seed(0)
    result = _train(TinyCausalLM(16), steps=60, eval_every=20)
    assert result.status == "ok" and result.error is None
    assert [s for s, _ in result.curve] == [20, 40, 60]
    assert result.metric == result.curve[-1][1] and result.best_metric == max(m for _, m in result.curve)
    assert result.metric > 0.2  # chance is 1/16; the prefix mean reveals the repeating motif's tokens
    assert result.loss < math.log(16)
    assert result.params == sum(p.numel() for p in TinyCausalLM(16).parameters())
    assert 0 < result.train_time_s <= result.wall_time_s and result.tokens_per_s > 0
    assert result.peak_mem_bytes > 0 and result.device == "cpu" and result.host


def test_deterministic_on_cpu():
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(_train(TinyCausalLM(16), steps=15, seed=3))
    assert runs[0].curve == runs[1].curve and runs[0].loss == runs[1].loss
    torch.manual_seed(0)
    assert _train(TinyCausalLM(16), steps=15, seed=4).loss != runs[0].loss  # the seed moves the data


def test_aux_loss_is_added():
    class WithAux(TinyCausalLM):
        def forward(self, ids):
            out = super().forward(ids)
            self.aux_loss = self.head.weight.sum() * float("nan")  # a broken auxiliary loss
            return out

    # The task loss of step 1 is finite; only if the aux loss joins the total do NaN gradients
    # spoil the weights, so that step 2's task loss is NaN.
    result = _train(WithAux(16), steps=5)
    assert result.status == "failed" and result.error.startswith("non-finite loss (nan) at step 2")


def test_nan_and_exceptions_are_failed_results():
    class Nan(TinyCausalLM):
        def forward(self, ids):
            return super().forward(ids) * float("nan")

    class Raises(TinyCausalLM):
        def forward(self, ids):
            raise RuntimeError("primitive exploded\nsecond line")

    nan = _train(Nan(16), steps=5)
    assert nan.status == "failed" and nan.error.startswith("non-finite loss (nan) at step 1")
    raised = _train(Raises(16), steps=5)
    assert raised.status == "failed" and raised.error == "RuntimeError: primitive exploded second line"


def test_divergence_and_time_limit():
    class Grows(TinyCausalLM):
        calls = 0

        def forward(self, ids):
            Grows.calls += 1
            push = torch.zeros(16)
            push[0] = 0.1 * Grows.calls ** 2  # an ever larger vote for token 0: the loss climbs
            return super().forward(ids) + push

    diverged = _train(Grows(16), steps=200, eval_every=1000)
    assert diverged.status == "failed" and diverged.error.startswith("loss diverged")
    slow = _train(TinyCausalLM(16), steps=10_000, time_limit_s=0.3)
    assert slow.status == "failed" and slow.error.startswith("time limit 0.3s reached at step")


def test_lr_schedule_warms_up_then_decays_to_a_tenth():
    assert lr_factor(0, 100, 10) == 0.1 and lr_factor(9, 100, 10) == 1.0
    assert abs(lr_factor(10, 100, 10) - 1.0) < 1e-9 and abs(lr_factor(99, 100, 10) - 0.1) < 0.01


def test_evaluate_builds_the_architecture_and_checks_budgets():
    arch = small_arch("transformer", "toy-causal:vocab=16,seq=16", width=32)
    ok = evaluate(Candidate(arch, "toy-causal:vocab=16,seq=16", 8), device="cpu", eval_every=4)
    assert ok.status == "ok" and [s for s, _ in ok.curve] == [4, 8] and ok.flops_per_token > 0
    big = evaluate(Candidate(arch, "toy-causal:vocab=16,seq=16", 8), device="cpu", max_params=1000)
    assert big.status == "failed" and big.error == f"{ok.params} parameters exceed the limit 1000"
    assert big.train_time_s == 0.0
    bad = evaluate(Candidate(arch, "no-such-task", 8), device="cpu")
    assert bad.status == "failed" and bad.error.startswith("bad task: unknown task 'no-such-task'")


def test_constant_schedule_keeps_the_peak_rate_after_warm_up():
    assert [lr_factor(s, 400, 0, "constant") for s in (0, 1, 200, 399)] == [1.0] * 4
    assert lr_factor(0, 400, 4, "constant") == 0.25 and lr_factor(3, 400, 4, "constant") == 1.0
    assert lr_factor(399, 400, 0, "constant") == 1.0 > lr_factor(399, 400, 0, "cosine")


def test_config_starts_from_the_task_recipe_and_overrides_win():
    task = get_task("mqar:seq=64,pairs=4,vocab=128")
    cfg = TrainConfig.for_task(task)
    recipe = task.recipe
    assert (cfg.steps, cfg.batch_size, cfg.lr, cfg.schedule, cfg.warmup, cfg.betas) == (
        recipe.steps, recipe.batch_size, recipe.lr, recipe.schedule, recipe.warmup, recipe.betas)
    assert cfg.eval_batches == task.eval_batches
    mine = TrainConfig.for_task(task, 50, lr=1e-2, schedule="cosine", warmup=None)
    assert (mine.steps, mine.lr, mine.schedule, mine.warmup) == (50, 1e-2, "cosine", recipe.warmup)


def test_the_optimizer_uses_the_configured_betas():
    from einsearch.evaluators.trainer import _optimizer

    opt = _optimizer(TinyCausalLM(16), TrainConfig(steps=1, betas=(0.8, 0.999)))
    assert all(group["betas"] == (0.8, 0.999) for group in opt.param_groups)
