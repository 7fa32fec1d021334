import json
import random
import subprocess
import sys

import pytest

GOOD = "net(64, block(pre:rms, compose(seq(linear(2), act(gelu), linear(1)))))"


def test_help_lists_commands(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("ops", "tasks", "sample", "check"):
        assert command in result.output


def test_ops_json(cli):
    result = cli("ops", "--json")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows
    for row in rows:
        assert {"name", "category", "causal", "cost", "hparams", "compute_only"} <= set(row)
    assert {r["name"]: r["compute_only"] for r in rows}["deltanet"] == ["chunk"]


def test_ops_table_marks_compute_only_hyperparameters(cli):
    result = cli("ops")
    assert result.exit_code == 0
    assert "chunk*=" in result.output and "chunk=" not in result.output and "compute-only" in result.output


def test_sample_json(cli):
    result = cli("sample", "-n", "4", "--seed", "3", "--task", "toy-causal", "--max-params", "1e5", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 4 and all(r["params"] <= 100_000 for r in rows)
    assert {"arch", "hash", "params", "flops_per_token"} <= set(rows[0])
    again = cli("sample", "-n", "4", "--seed", "3", "--task", "toy-causal", "--max-params", "1e5", "--json")
    assert again.stdout == result.stdout


def test_check_ok(cli):
    result = cli("check", GOOD, "--task", "toy-causal", "--json")
    assert result.exit_code == 0
    row = json.loads(result.stdout)
    assert row["arch"] == GOOD and row["params"] > 0 and row["causal"] is True


@pytest.mark.parametrize("args", [
    ["check", "net(64, block(pre:rms, nosuch()))"],
    ["check", "net(64, block(pre:rms, compose(linear(2))))"],
    ["check", GOOD, "--task", "nosuchtask"],
    ["check", GOOD, "--task", "toy-causal:vocab=abc"],
    ["check", "net(64, block(pre:rms, compose(permute(id))))", "--task", "toy-causal"],
    ["sample", "-n", "2", "--max-params", "ten"],
    ["sample", "-n", "2", "--max-params", "10"],
])
def test_bad_input_exit_2_one_line(cli, args):
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_fuzzed_strings_in_a_real_process():
    """The real console script: exit 2 and one line on stderr for mutated architecture strings."""
    rng = random.Random(5)
    texts = []
    for _ in range(6):
        chars = list(GOOD)
        del chars[rng.randrange(len(chars))]
        chars.insert(rng.randrange(len(chars)), rng.choice("(),x9:"))
        texts.append("".join(chars))
    code = ("import sys\nfrom einsearch.cli import main\nfor t in sys.argv[1:]:\n"
            "    sys.argv = ['einsearch', 'check', t]\n"
            "    try:\n        main()\n    except SystemExit as e:\n        print('EXIT', e.code)\n")
    out = subprocess.run([sys.executable, "-c", code, *texts], capture_output=True, text=True, timeout=120)
    codes = [line for line in out.stdout.splitlines() if line.startswith("EXIT")]
    assert len(codes) == len(texts)
    assert "Traceback" not in out.stderr
    bad = [c for c in codes if c != "EXIT 0"]
    assert all(c == "EXIT 2" for c in bad)
    assert len([l for l in out.stderr.splitlines() if l.startswith("error:")]) == len(bad)


def test_tasks_show_their_recipe(cli):
    result = cli("tasks", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}
    short = rows["mqar-tiny"]["recipe"]
    assert short["schedule"] == "constant" and short["steps"] > 0 and short["lr"] > 0 and short["batch_size"] > 0
    assert rows["mqar-cpu"]["recipe"]["schedule"] == "cosine"
    assert rows["mqar-cpu"]["plateau"] == 1 / 8 and rows["icl-regression"]["plateau"] is None
    table = cli("tasks")
    assert table.exit_code == 0 and "recipe" in table.stdout and "plateau" in table.stdout


def test_search_steps_default_to_the_task_recipe(tmp_path):
    from einsearch.search.run import SearchConfig, run_search
    from einsearch.storage import Store
    from einsearch.tasks import get_task

    with Store.open(f"sqlite:///{tmp_path / 'r.db'}") as store:
        for name, steps in (("recipe", None), ("given", 7)):
            run_search(SearchConfig(name=name, task="mqar-cpu", strategy="random", budget=2, steps=steps,
                                    executor="fake"), store)
        by_search = {name: {e.steps for e in store.evaluations(name)} for name in ("recipe", "given")}
        assert store.get_search("recipe").config["steps"] == get_task("mqar-cpu").recipe.steps
    assert by_search == {"recipe": {get_task("mqar-cpu").recipe.steps}, "given": {7}}
