"""Zoology's MQAR separation at a tiny size: attention solves it, BaseConv does not, same budget.

Two token-mixing layers each, width 64 (Zoology's Figure 2 setting, at T=32, N=4, V=64), 400 steps;
about 15 s each on one core. The full-size figure is bench/mqar_separation.py's (bench/RESULTS.md)."""
from einsearch.evaluators.trainer import evaluate
from einsearch.evaluators.types import Candidate
from tests.evaluators.helpers import small_arch

BUDGET = {"device": "cpu", "eval_every": 200}


def test_attention_recalls():
    arch = small_arch("transformer", "mqar-tiny", width=64, depth=2)
    result = evaluate(Candidate(arch, "mqar-tiny", 400), **BUDGET)
    assert result.status == "ok" and result.metric >= 0.95


def test_baseconv_does_not_recall_with_the_same_budget():
    arch = small_arch("baseconv", "mqar-tiny", width=64, depth=1)
    result = evaluate(Candidate(arch, "mqar-tiny", 400), **BUDGET)
    assert result.status == "ok" and result.metric <= 0.6
