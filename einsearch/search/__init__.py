"""Search over the grammar: ask/tell strategies, multi-fidelity, baselines, and the search loop."""
from einsearch.search.asha import Asha
from einsearch.search.base import SearchExhausted, Strategy
from einsearch.search.registry import make_strategy, parse_strategy, register_strategy, strategy_names

__all__ = ["Asha", "SearchExhausted", "Strategy", "make_strategy", "parse_strategy", "register_strategy",
           "strategy_names"]
