"""Zoology's MQAR separation at a tiny size: attention solves it, BaseConv does not, same budget.

~30-40 s on one core, above the fast-suite budget: opt in with EINSEARCH_SLOW=1."""
import os

import pytest

from einsearch.evaluators.trainer import evaluate
from einsearch.evaluators.types import Candidate
from tests.evaluators.helpers import small_arch

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("EINSEARCH_SLOW") != "1", reason="slow: set EINSEARCH_SLOW=1")]


def test_attention_recalls_and_baseconv_does_not():
    # Two token-mixing layers each, width 64 (Zoology's Figure 2 setting, at T=32, N=4, V=64).
    budget = {"device": "cpu", "eval_every": 200}
    attention = evaluate(Candidate(small_arch("transformer", "mqar-tiny", width=64, depth=2), "mqar-tiny", 400),
                         **budget)
    baseconv = evaluate(Candidate(small_arch("baseconv", "mqar-tiny", width=64, depth=1), "mqar-tiny", 400),
                        **budget)
    assert attention.status == baseconv.status == "ok"
    assert attention.metric >= 0.95
    assert baseconv.metric <= 0.6
