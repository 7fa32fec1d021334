"""Part (a)'s seed check: the search trains each candidate on one training seed (or `--train-seeds N`), and on
MQAR the step of the jump from the plateau varies by seed, so a win on few seeds can be a lucky draw. The best
finds and the most accurate baselines are trained again on more seeds (same steps and recipe) and the aim is
checked on their mean. The training is `einsearch.search.recheck` (what `einsearch recheck` runs); these
helpers are pure, so tests feed them made-up points."""
from __future__ import annotations

import dataclasses
import statistics
from typing import Sequence

from quality_front import Aim, Point, aim_lines, check_aim, dominated_by_baseline

Runs = dict[str, dict[int, float | None]]  # architecture -> training seed -> accuracy (None: failed)


def seed_range(first: int, last: int) -> str:
    """'seed 2' or 'seeds 1-2': training seeds first..last, both included."""
    return f"seed {first}" if first == last else f"seeds {first}-{last}"


def picked(points: Sequence[Point], aim: Aim, top: int) -> list[Point]:
    """What to train again: the finds the one-seed aim named (else the most accurate finds no baseline
    dominates), then the most accurate baselines and the aim's reference baseline; `top` of each."""
    named = list(dict.fromkeys(aim.smaller + aim.more_accurate))
    others = sorted((p for p in points if not p.baseline and p not in named and not dominated_by_baseline(p, points)),
                    key=lambda p: (-p.metric, p.state))
    finds = (named + others)[:top]
    bases = sorted((p for p in points if p.baseline), key=lambda p: (-p.metric, p.state))[:top]
    if aim.reference is not None and aim.reference not in bases:
        bases.append(aim.reference)
    return finds + bases


def seed_points(points: Sequence[Point], runs: Runs, seeds: int) -> list[Point]:
    """The points with every seed's run in, each with its mean accuracy over the seeds."""
    out = []
    for p in points:
        values = [runs.get(p.arch, {}).get(seed) for seed in range(seeds)]
        if all(v is not None for v in values):
            out.append(dataclasses.replace(p, metric=statistics.mean(values)))
    return out


def check_lines(checked: Sequence[Point], runs: Runs, seeds: int, threshold: float) -> list[str]:
    """The seed-check table and the aim on the seed means."""
    head = " | ".join(f"seed {s}" for s in range(seeds))
    lines = [f"| eval | baseline | {head} | mean | state | params |", "|---|---|" + "---|" * seeds + "---|---|---|"]
    for p in checked:
        values = [runs.get(p.arch, {}).get(s) for s in range(seeds)]
        cells = " | ".join("failed" if v is None else f"{v:.3f}" for v in values)
        mean = "-" if None in values else f"{statistics.mean(values):.3f}"
        lines.append(f"| e{p.evaluation} | {p.label} | {cells} | {mean} | {p.state:,} | {p.params:,} |")
    means = seed_points(checked, runs, seeds)
    lines += ["", f"On the mean of {seeds} training seeds (a point with a failed run left out):", "",
              *aim_lines(check_aim(means, threshold), threshold, f"on the mean of {seeds} training seeds")]
    return lines
