"""Training one candidate on several seeds: the mean as its metric, each seed's value beside it."""
import statistics

import pytest

from einsearch.evaluators.seeds import evaluate_seeds, seed_metric, seed_values
from einsearch.evaluators.trainer import evaluate
from einsearch.evaluators.types import Candidate, Result

from tests.evaluators.helpers import small_arch

TASK = "toy-causal:vocab=16,seq=16"
ARCH = "net(16, block(pre:rms, mlp(expand=2, act=gelu)))"


def made_up(candidate: Candidate) -> Result:
    """A run whose figures are simple functions of its seed, so the combined ones can be checked."""
    s = candidate.seed
    return Result(status="ok", metric_name="accuracy", metric=0.1 * s, loss=1.0 + s, curve=[(5, 0.01 * s), (10, 0.1 * s)],
                  params=100, train_time_s=2.0, extra_metrics={"ridge_mse": float(s)}, weights={"seed": s})


def test_the_mean_of_the_seeds_with_each_seed_beside_it():
    result = evaluate_seeds(Candidate(ARCH, TASK, 10, seed=2), 3, made_up)  # seeds 2, 3, 4
    assert result.ok and result.metric == pytest.approx(0.3) and result.loss == pytest.approx(4.0)
    assert result.curve == [(5, pytest.approx(0.03)), (10, pytest.approx(0.3))]
    assert result.best_metric == pytest.approx(0.3) and result.train_time_s == 6.0 and result.params == 100
    assert result.extra_metrics == {"ridge_mse": 3.0, "accuracy_seed2": pytest.approx(0.2),
                                    "accuracy_seed3": pytest.approx(0.3), "accuracy_seed4": pytest.approx(0.4)}
    assert result.weights == {"seed": 2}  # the first seed's
    assert seed_values("accuracy", result.extra_metrics, 2, 3) == {2: pytest.approx(0.2), 3: pytest.approx(0.3),
                                                                  4: pytest.approx(0.4)}
    assert seed_metric("loss", 7) == "loss_seed7"


def test_a_failing_seed_fails_the_candidate_and_names_the_seed():
    trained = []

    def fails_on_seed_one(candidate):
        trained.append(candidate.seed)
        if candidate.seed == 1:
            return Result.failure("diverged: loss is nan at step 3", metric_name="accuracy")
        return made_up(candidate)

    result = evaluate_seeds(Candidate(ARCH, TASK, 10, seed=0), 3, fails_on_seed_one)
    assert result.status == "failed" and result.error == "training seed 1: diverged: loss is nan at step 3"
    assert trained == [0, 1]  # no point training the third


def test_the_trainer_scores_the_mean_of_separate_runs():
    arch = small_arch("transformer", TASK, width=32)
    runs = [evaluate(Candidate(arch, TASK, 8, seed=seed), device="cpu", eval_every=4) for seed in (3, 4)]
    both = evaluate(Candidate(arch, TASK, 8, seed=3), device="cpu", eval_every=4, train_seeds=2, keep_weights=True)
    assert runs[0].metric != runs[1].metric  # else the mean would not show it used both
    assert both.metric == pytest.approx(statistics.mean(r.metric for r in runs))
    assert both.extra_metrics["accuracy_seed3"] == pytest.approx(runs[0].metric)
    assert both.extra_metrics["accuracy_seed4"] == pytest.approx(runs[1].metric)
    assert [s for s, _ in both.curve] == [4, 8] and both.weights is not None
