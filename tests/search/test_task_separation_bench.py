"""bench/task_separation.py: the aggregate's table from made-up runs (no training)."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from task_separation import matrix  # noqa: E402

SPECS = ["mad-recall:seq=64", "mad-compression:seq=16"]


def _run(name: str, spec: str, seed: int, metric: float | None) -> dict:
    return {"name": name, "task": spec, "seed": seed, "params": 1000, "arch": f"arch-of-{name}",
            "status": "ok" if metric is not None else "failed", "metric": metric}


def _row(section: str, name: str) -> list[str]:
    line = next(line for line in section.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_cells_are_means_over_seeds_with_their_range_and_failures_count_zero():
    runs = [_run("a", SPECS[0], 0, 1.0), _run("a", SPECS[0], 1, 0.8),
            _run("a", SPECS[1], 0, 0.5), _run("a", SPECS[1], 1, None),
            _run("b", SPECS[0], 0, 0.2), _run("b", SPECS[0], 1, 0.4)]  # b has no compression run at all
    section = matrix(runs, "mad:size=cpu", SPECS, argparse.Namespace(seeds=2, workers=2, width=64), wall=60.0)
    assert "mean of seeds 0..1 (lowest-highest)" in section
    assert _row(section, "a") == ["a", "1,000", "0.900 (0.800-1.000)", "0.250 (0.500-0.500), 1 failed", "0.575"]
    assert _row(section, "b") == ["b", "1,000", "0.300 (0.200-0.400)", "missing", "0.150"]
    assert section.index("| a |") < section.index("| b |")  # best mean first


def test_one_seed_shows_plain_scores():
    runs = [_run("a", SPECS[0], 0, 0.75), _run("a", SPECS[1], 0, None)]
    section = matrix(runs, "mad:size=cpu", SPECS, argparse.Namespace(seeds=1, workers=1, width=64), wall=6.0)
    assert "seed 0." in section and _row(section, "a") == ["a", "1,000", "0.750", "failed", "0.375"]
