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


def non_dominated_sort(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Indices of `points` in successive Pareto fronts (NSGA-II's fast non-dominated sort): front 0 is
    the non-dominated set, front 1 what is non-dominated once front 0 is removed, and so on."""
    dominated_by: list[list[int]] = [[] for _ in points]  # i -> the points i dominates
    count = [0] * len(points)  # i -> how many points dominate i
    for i, a in enumerate(points):
        for j in range(i + 1, len(points)):
            b = points[j]
            if dominates(a, b):
                dominated_by[i].append(j)
                count[j] += 1
            elif dominates(b, a):
                dominated_by[j].append(i)
                count[i] += 1
    fronts: list[list[int]] = []
    current = [i for i, c in enumerate(count) if c == 0]
    while current:
        fronts.append(current)
        following = []
        for i in current:
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    following.append(j)
        current = sorted(following)
    return fronts


def crowding_distance(points: Sequence[Sequence[float]], front: Sequence[int]) -> dict[int, float]:
    """NSGA-II's crowding distance of each index of one front: the sum over objectives of the normalised
    gap between its neighbours; the extremes of every objective get infinity (always kept)."""
    distance = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: float("inf") for i in front}
    for k in range(len(points[front[0]])):
        ordered = sorted(front, key=lambda i: (points[i][k], i))
        low, high = points[ordered[0]][k], points[ordered[-1]][k]
        distance[ordered[0]] = distance[ordered[-1]] = float("inf")
        if high == low:
            continue
        for before, i, after in zip(ordered, ordered[1:], ordered[2:]):
            distance[i] += (points[after][k] - points[before][k]) / (high - low)
    return distance


def pareto_order(points: Sequence[Sequence[float]],
                 violations: Sequence[float] | None = None) -> list[tuple[int, float]]:
    """Per point, its sort key for selection: (front index, minus crowding distance); smaller is better.

    With `violations` (per point, 0 when feasible), Deb's constrained domination: the feasible points
    are sorted among themselves and every infeasible point comes after them, the least violating first
    (so a floor on the metric keeps non-learners from holding the front's extremes)."""
    violations = violations or [0.0] * len(points)
    feasible = [i for i, v in enumerate(violations) if v <= 0]
    keys: list[tuple[int, float]] = [(0, 0.0)] * len(points)
    fronts = non_dominated_sort([points[i] for i in feasible])
    for rank, front in enumerate(fronts):
        members = [feasible[j] for j in front]
        for i, d in crowding_distance(points, members).items():
            keys[i] = (rank, -d)
    for i, v in enumerate(violations):
        if v > 0:
            keys[i] = (len(fronts), float(v))
    return keys
