"""Search over the grammar: ask/tell strategies, multi-fidelity, baselines, and the search loop."""
from einsearch.search.asha import Asha
from einsearch.search.base import RandomSearch, SearchExhausted, Strategy
from einsearch.search.evolution import Evolution
from einsearch.search.optuna_search import OptunaSearch
from einsearch.search.pcfg_learn import PcfgLearn
from einsearch.search.strategies import STRATEGIES, make_strategy, parse_strategy

__all__ = ["Asha", "Evolution", "OptunaSearch", "PcfgLearn", "RandomSearch", "STRATEGIES", "SearchExhausted",
           "Strategy", "make_strategy", "parse_strategy"]
