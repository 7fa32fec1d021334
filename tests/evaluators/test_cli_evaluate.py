import json

import pytest

from tests.evaluators.helpers import small_arch


def test_evaluate_json_object(cli):
    arch = small_arch("transformer", "toy-causal:vocab=16,seq=16", width=32)
    out = cli("evaluate", arch, "--task", "toy-causal:vocab=16,seq=16", "--steps", "6", "--json", "--device", "cpu")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    for key in ("status", "metric_name", "metric", "loss", "params", "wall_time_s", "tokens_per_s", "error"):
        assert key in data
    assert data["status"] == "ok" and data["error"] is None and data["steps"] == 6


def test_evaluate_baseline_name_and_table(cli):
    out = cli("evaluate", "transformer", "--task", "toy-causal:vocab=16,seq=16", "--steps", "2", "--device", "cpu")
    assert out.exit_code == 0, out.output
    assert "accuracy" in out.stdout and "tokens/s" in out.stdout


def test_bad_input_is_one_line_exit_2(cli):
    for args in (["net(", "--task", "toy-causal"], ["transformer", "--task", "nope"],
                 ["transformer", "--steps", "0"], ["transformer", "--executor", "dask"]):
        out = cli("evaluate", *args)
        assert out.exit_code == 2, (args, out.output)
        assert "Traceback" not in out.output and len(out.stderr.strip().splitlines()) == 1


def test_failed_training_exits_1_with_reason(cli):
    arch = small_arch("transformer", "toy-causal", width=32)
    out = cli("evaluate", arch, "--task", "tests.evaluators.faulty_task:make_nan", "--steps", "3", "--json")
    assert out.exit_code == 1
    assert json.loads(out.stdout)["error"].startswith("non-finite loss")


def test_without_steps_the_task_recipe_applies(cli):
    from tests.evaluators.faulty_task import make_nan

    arch = small_arch("transformer", "toy-causal", width=32)
    out = cli("evaluate", arch, "--task", "tests.evaluators.faulty_task:make_nan", "--json")
    assert json.loads(out.stdout)["steps"] == make_nan().recipe.steps


def test_evaluate_on_several_training_seeds_reports_their_mean(cli):
    out = cli("evaluate", "transformer", "--task", "toy-causal:vocab=16,seq=16", "--steps", "6", "--seed", "3",
              "--train-seeds", "2", "--json", "--device", "cpu")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    per_seed = [data["extra_metrics"][f"accuracy_seed{s}"] for s in (3, 4)]
    assert data["train_seeds"] == 2 and data["metric"] == pytest.approx(sum(per_seed) / 2)
    bad = cli("evaluate", "transformer", "--task", "toy-causal", "--train-seeds", "0")
    assert bad.exit_code == 2 and bad.stderr.strip() == "error: --train-seeds must be >= 1, got 0"
