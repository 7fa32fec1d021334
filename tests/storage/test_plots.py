"""Best-so-far, the Pareto front, and the PNG they are drawn into; the HTML report."""
from __future__ import annotations

import random

import pytest

from einsearch.storage import Store
from einsearch.storage.plots import best_so_far, pareto_front, save_search_plot


NAME = "s<script>x</script>"


def test_best_so_far_both_directions():
    assert best_so_far([0.2, 0.1, 0.5, 0.4], higher_is_better=True) == [0.2, 0.2, 0.5, 0.5]
    assert best_so_far([3.0, 4.0, 1.0, 2.0], higher_is_better=False) == [3.0, 3.0, 1.0, 1.0]


def test_pareto_front_matches_brute_force():
    rng = random.Random(0)
    for higher in (True, False):
        points = [(rng.randint(1, 50), round(rng.random(), 2)) for _ in range(60)]
        sign = 1 if higher else -1

        def dominated(i: int) -> bool:
            p, m = points[i]
            return any(q <= p and sign * n >= sign * m and (q < p or sign * n > sign * m) for q, n in points)

        front = pareto_front(points, higher)
        # every non-dominated point is on the front once (duplicates of a point: the first of them)
        assert {points[i] for i in front} == {points[i] for i in range(len(points)) if not dominated(i)}
        assert all(not dominated(i) for i in front)
        assert [points[i][0] for i in front] == sorted(points[i][0] for i in front)


def test_plot(sqlite_url, archs, run_eval, tmp_path):
    with Store.open(sqlite_url) as store:
        store.create_search(NAME, task="toy-causal", strategy="random")
        with pytest.raises(ValueError, match="no successful evaluations"):
            save_search_plot(NAME, store.evaluations(NAME), tmp_path / "empty.png")
        for i, arch in enumerate(archs):
            run_eval(store, NAME, arch, (i * 37 % 11) / 10, params=1000 + 500 * i)
        run_eval(store, NAME, archs[0], None, status="failed")
        out = save_search_plot(NAME, store.evaluations(NAME), tmp_path / "s.png")
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
