"""Commands that do not train answer without importing torch once their answers are on disk: the
second time (a new process) they print exactly what the first, torch-importing, time printed."""
import contextlib
import io
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

SECOND_RUN = """
import contextlib, io, json, sys
import typer
from einsearch.cli import _load_commands, app
_load_commands()
command = typer.main.get_command(app)
outputs = {}
for args in json.loads(sys.argv[1]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        command.main(args=args, prog_name="einsearch", standalone_mode=False)
    outputs[" ".join(args)] = out.getvalue()
print(json.dumps({"outputs": outputs, "heavy": [m for m in ("torch", "ray", "optuna") if m in sys.modules]}))
"""


@pytest.fixture
def searched(tmp_path):
    """(environment with empty caches of its own, database URL) after a 3-evaluation fake search."""
    env = {**os.environ, "EINSEARCH_MEMO": str(tmp_path / "memo"), "COLUMNS": "200",
           "EINSEARCH_PARAM_CACHE": str(tmp_path / "params")}
    db = f"sqlite:///{tmp_path / 'r.db'}"
    _einsearch(["search", "--task", "toy-causal", "--strategy", "random", "--budget", "3", "--executor", "fake",
                "--name", "s", "--db", db], env)
    return env, db


def _second_run(commands: list[list[str]], env: dict) -> dict:
    """What a new process prints for each command, run in it one after another, and the heavy modules it loaded."""
    done = subprocess.run([sys.executable, "-c", SECOND_RUN, json.dumps(commands)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _einsearch(args: list[str], env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "einsearch.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_store_and_listing_commands_answer_from_disk_without_torch(searched):
    env, db = searched
    best = json.loads(_einsearch(["leaderboard", "--db", db, "--format", "json"], env).splitlines()[0])
    commands = [["leaderboard", "--db", db], ["leaderboard", "--db", db, "--format", "json"], ["searches", "--db", db],
                ["show", best["arch_hash"], "--db", db], ["tasks"], ["baselines", "--task", "mqar-tiny"], ["ops"]]
    first = {" ".join(args): _einsearch(args, env) for args in commands}

    second = _second_run(commands, env)
    assert second["heavy"] == []
    assert second["outputs"] == first
    assert best["state_size"] is not None and best["compact"] in first[f"leaderboard --db {db}"].replace("\n", "")


def test_after_a_search_its_results_are_shown_without_torch(searched):
    """The search itself leaves on disk what the results commands read: their first call is fast too."""
    env, db = searched
    commands = [["leaderboard", "--db", db, "--format", "json"], ["searches", "--db", db], ["show", "1", "--db", db]]
    second = _second_run(commands, env)
    assert second["heavy"] == []
    rows = [json.loads(line) for line in second["outputs"][f"leaderboard --db {db} --format json"].splitlines()]
    assert len(rows) >= 1 and all(row["state_size"] is not None and row["compact"] for row in rows)
