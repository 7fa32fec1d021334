import json
import math

import pytest

from einsearch.evaluators.types import Candidate, Result
from tests.evaluators.helpers import small_arch


def test_candidate_parses_string_and_keys_on_hash():
    text = small_arch("transformer", "toy-causal")
    a = Candidate(text, "toy-causal", 10, seed=1, parents=["abc"], op="sample")
    b = Candidate(a.arch, "toy-causal", 10, seed=1)
    assert str(a.arch) == text and a.parents == ("abc",)
    assert a.key == b.key == (a.arch.hash, "toy-causal", 10, 1, None)  # None: the task recipe's rate
    assert Candidate(text, "toy-causal", 20).key != a.key
    assert Candidate.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_candidate_rejects_bad_steps():
    with pytest.raises(ValueError, match="steps"):
        Candidate(small_arch("transformer", "toy-causal"), "toy-causal", 0)


def test_result_round_trips_through_json_with_nan_as_null():
    r = Result(status="ok", metric_name="accuracy", metric=0.5, best_metric=0.6, loss=float("nan"),
               curve=[(10, 0.4), (20, 0.5)], params=100, wall_time_s=1.5, train_time_s=1.0)
    data = json.loads(json.dumps(r.to_dict()))
    assert data["loss"] is None and data["curve"] == [[10, 0.4], [20, 0.5]]
    back = Result.from_dict(data)
    assert back.curve == [(10, 0.4), (20, 0.5)] and back.metric == 0.5 and back.params == 100


def test_result_failure_is_one_line_and_status_checked():
    r = Result.failure("boom\n  at line 3\n  more")
    assert r.status == "failed" and r.error == "boom at line 3 more" and not r.ok
    with pytest.raises(ValueError, match="status"):
        Result(status="maybe")
    assert math.isnan(Result(status="ok", loss=float("nan")).loss)
