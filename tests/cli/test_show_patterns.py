"""`einsearch show ID --patterns`: the attention patterns stored with an evaluation."""
from __future__ import annotations

import json

from einsearch.evaluators.trainer import evaluate
from einsearch.evaluators.types import Candidate
from einsearch.storage import Store
from tests.evaluators.helpers import small_arch

TASK = "icl-regression-tiny"


def test_show_patterns_of_a_stored_evaluation(cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'einsearch.db'}"
    candidate = Candidate(small_arch("transformer", TASK, depth=2), TASK, 10)
    result = evaluate(candidate, device="cpu")
    assert result.ok and len(result.patterns) == 2
    with Store.open(url) as store:
        eval_id = store.start_evaluation(None, candidate)
        store.finish_evaluation(eval_id, result)
        bare = store.start_evaluation(None, Candidate(small_arch("baseconv", TASK), TASK, 10))
        store.finish_evaluation(bare, {"status": "ok", "metric_name": "mse", "metric": 3.0})
        assert store.result(eval_id).patterns == result.patterns  # kept in the evaluation's metrics JSON
    shown = cli("show", str(eval_id), "--db", url, "--patterns")
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert "attention patterns" in out and "ridge_mse" in out
    for p in result.patterns:
        row = next(line for line in out.splitlines() if line.strip().startswith(p["layer"]))
        assert p["op"] in row and p["pattern"] in row
    assert "attention patterns" not in cli("show", str(eval_id), "--db", url).stdout  # only when asked
    record = json.loads(cli("show", str(eval_id), "--db", url, "--json").stdout)
    assert record["evaluations"][0]["metrics"]["patterns"] == result.patterns
    none = cli("show", str(bare), "--db", url, "--patterns")
    assert none.exit_code == 0 and "none recorded" in none.stdout
