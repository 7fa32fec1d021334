"""The Pareto front of results: no other point is at least as good on every objective and better
on one. Objectives are given as numbers to maximise (negate a cost)."""
from __future__ import annotations

from typing import Sequence, TypeVar

T = TypeVar("T")


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_front(points: Sequence[tuple[T, Sequence[float]]]) -> list[tuple[T, Sequence[float]]]:
    """The non-dominated (item, objectives) pairs, in input order. O(n^2), fine for searches."""
    return [(item, obj) for item, obj in points
            if not any(dominates(other, obj) for _, other in points)]
