"""Search benchmark on the fake evaluator: best metric found against evaluations, every strategy.

For each strategy and each of `--seeds` seeds, runs `--budget` ask/tell rounds on the fast fake
evaluator (einsearch.evaluators.executor_fake: a deterministic score of the architecture, no training) and records
the best score found after each evaluation. Writes a PNG of the mean curves (with the range over
seeds shaded) and a table (mean +- std of the best found at a few budgets, and time per ask+tell) to
the "Search (bench/search.py)" section of bench/RESULTS.md, replacing only that section.

    python bench/search.py                                   # 10 seeds x 100 evaluations (minutes)
    python bench/search.py --budget 5 --seeds 1 --strategies random,evolution --results /tmp/x.md
"""
from __future__ import annotations

import argparse
import datetime
import logging
import platform
import statistics
import time
from pathlib import Path

import optuna

from einsearch.grammar import Limits
from einsearch.evaluators.executor_fake import fake_result
from einsearch.search.registry import make_strategy
from einsearch.tasks import get_task
from results_md import RESULTS, write_section

SECTION = "## Search (bench/search.py)"
DEFAULT_STRATEGIES = ["random", "evolution:population=10", "evolution:population=10,crossover=0.3", "tpe",
                      "random-optuna", "qmc", "gp", "nsga2", "pcfg-learn:refit_every=10"]


def curve(spec: str, task: str, budget: int, seed: int, max_params: int) -> tuple[list[float], float]:
    """Best score after each evaluation, and seconds per ask+tell."""
    strategy = make_strategy(spec, get_task(task), steps=100, seed=seed, limits=Limits(max_params=max_params))
    best, out, start = float("-inf"), [], time.perf_counter()
    for _ in range(budget):
        candidate = strategy.ask()
        result = fake_result(candidate)
        strategy.tell(candidate, result)
        best = max(best, result.metric)
        out.append(best)
    return out, (time.perf_counter() - start) / budget


def plot(curves: dict[str, list[list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for spec, runs in curves.items():
        xs = range(1, len(runs[0]) + 1)
        mean = [statistics.mean(values) for values in zip(*runs)]
        ax.plot(xs, mean, label=spec)
        ax.fill_between(xs, [min(v) for v in zip(*runs)], [max(v) for v in zip(*runs)], alpha=0.1)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best fake metric found (mean over seeds)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(curves: dict[str, list[list[float]]], seconds: dict[str, float], budget: int) -> list[str]:
    marks = sorted({m for m in (10, 25, 50, budget) if m <= budget})
    lines = ["| strategy | " + " | ".join(f"best @ {m}" for m in marks) + " | ms per ask+tell |",
             "|---|" + "---|" * (len(marks) + 1)]
    for spec, runs in curves.items():
        cells = []
        for m in marks:
            values = [run[m - 1] for run in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {spread:.3f}")
        lines.append(f"| {spec} | " + " | ".join(cells) + f" | {1000 * seconds[spec]:.1f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--task", default="toy-causal")
    parser.add_argument("--max-params", type=int, default=500_000)
    parser.add_argument("--strategies", default=";".join(DEFAULT_STRATEGIES),
                        help="';'-separated when options contain commas, else ','-separated")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--png", default=None, help="default: search.png beside --results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    specs = args.strategies.split(";") if ";" in args.strategies else args.strategies.split(",")
    results = Path(args.results)
    png = Path(args.png) if args.png else results.with_name("search.png")
    curves, seconds = {}, {}
    for spec in specs:
        runs = [curve(spec, args.task, args.budget, seed, args.max_params) for seed in range(args.seeds)]
        curves[spec] = [c for c, _ in runs]
        seconds[spec] = statistics.mean(s for _, s in runs)
        logging.getLogger("bench.search").warning("%s: mean best %.3f", spec,
                                                  statistics.mean(c[-1] for c in curves[spec]))
    plot(curves, png)
    body = "\n".join([
        f"{datetime.date.today()} on {platform.machine()}, Python {platform.python_version()}; fake evaluator "
        f"(einsearch.evaluators.executor_fake, no training), task {args.task}, max params {args.max_params:,}, "
        f"{args.seeds} seeds x {args.budget} evaluations, sequential ask/tell.",
        "",
        f"![best found vs evaluations]({png.name})",
        "",
        *table(curves, seconds, args.budget),
        "",
        "On a real task (trained candidates, best search result vs best seeded baseline): "
        "bench/search_real.py, its own section.",
    ])
    write_section(f"{SECTION}\n{body}", results)


if __name__ == "__main__":
    main()
