"""Random search: independent draws from the grammar's weights (the baseline every strategy must beat)."""
from __future__ import annotations

import random

from einsearch.grammar import Arch
from einsearch.search.base import Strategy
from einsearch.search.registry import register_strategy
from einsearch.search.types import Candidate


@register_strategy("random")
class RandomSearch(Strategy):
    """PCFG sampling: every candidate drawn independently from the grammar's weights."""

    name = "random"

    def _propose(self, rng: random.Random) -> Candidate:
        return self._emit(self.fresh(Arch(self.sampler.net(rng)), rng), (), "sample")
