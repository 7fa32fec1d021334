"""Search strategies on a landscape fitted to real evaluations, over hundreds of search seeds.

bench/search_quality.py (c) trains every candidate, so a 2-core machine affords 3 search seeds per strategy,
too few to rank strategies on a task that one random draw in ten solves. This bench replaces training by a
landscape fitted to a store of real evaluations of one task at one step budget, and runs the strategies'
own ask/tell on it, so it can afford hundreds of seeds:

- a token mixer's chance to solve the task (metric >= `--threshold`) is its measured rate, shrunk toward
  the store's overall rate by `PSEUDO_COUNT` pseudo-evaluations; an architecture's chance is the largest of
  its token mixers' ("(composed)" for one built from einspace's operations alone);
- heritability h (the share of the store's trained children of a solver that solved too, from its
  lineage): the set of token mixers decides whether an architecture can solve (with chance/h, drawn once
  per set), and one that can solves with chance h (drawn once per architecture). An architecture's chance
  stays the fitted one (at most h), and a child that keeps a solver's mixers solves with chance h, as the
  store's did; without lineage in the store, or with `--heritability none`, each one is drawn on its own;
- draws are fixed per landscape seed (the search's seed), so a repeat gets its first result, as the store's
  cache gives; a solver scores one of the stored solvers' values, a non-solver one of the stored
  non-solvers' values, partial learners included, at random: a partial score is modelled as noise,
  unrelated to the architecture (bench/RESULTS.md's reading of this bench says why).

It checks a strategy's logic on a landscape as sparse as the measured one (does it fit on noise, does it
exploit a solver once found); it does not replace the trained comparison, and the per-mixer rates come
from few evaluations, biased toward what the stored searches chose to train.

    python bench/strategy_landscape.py --store DIR/quality.db --task 'mqar:seq=64,pairs=16,vocab=128' --steps 400
    python bench/strategy_landscape.py --store bench-quality-stores/quality.db --task mqar-cpu   # after make bench-quality
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from quality_run import now
from results_md import RESULTS, write_section

from einsearch import parse
from einsearch.errors import EinsearchError, UsageError
from einsearch.grammar import Arch, Limits
from einsearch.ops import get_op
from einsearch.ops.registry import TOKEN_CATEGORIES
from einsearch.search.registry import make_strategy
from einsearch.search.types import Result
from einsearch.storage.store import Store
from einsearch.tasks import get_task

STRATEGIES = ["random", "pcfg-learn:refit_every=4", "pcfg-learn:refit_every=4,metric_floor=auto",
              "pcfg-learn:refit_every=4,metric_floor=auto,smoothing=0.1",
              "pcfg-learn:refit_every=1,metric_floor=auto,smoothing=0.01,rate=1.0",
              "evolution:population=6,sample_size=3", "evolution:population=6,sample_size=3,metric_floor=auto", "tpe"]
PSEUDO_COUNT = 4.0
COMPOSED = "(composed)"


def token_mixers(arch: Arch) -> list[str]:
    mixers = [op for op in arch.ops() if get_op(op).category in TOKEN_CATEGORIES]
    return mixers or [COMPOSED]


@dataclass
class Landscape:
    rates: dict[str, float]  # token mixer -> chance to solve
    base: float  # the overall rate: mixers never evaluated
    solved: list[float]  # the metrics a solver or a non-solver is given
    unsolved: list[float]
    fitted_on: int  # architectures
    heritability: float | None = None  # the chance that one whose token mixers can solve does

    def metric(self, arch: Arch, seed: int) -> float:
        mixers = token_mixers(arch)
        chance = max(self.rates.get(op, self.base) for op in mixers)
        draw = random.Random(f"{arch.hash}:{seed}")
        if self.heritability:
            can = random.Random(f"{','.join(mixers)}:{seed}").random() < chance / self.heritability
            solves = can and draw.random() < self.heritability
        else:
            solves = draw.random() < chance
        return draw.choice(self.solved if solves else self.unsolved)


def fit_landscape(evaluations: Iterable[tuple[str, float]], threshold: float) -> Landscape:
    """From (architecture string, metric) pairs, each architecture counted once."""
    metric_of = {parse(arch).hash: (parse(arch), metric) for arch, metric in evaluations}
    solved = [m for _, m in metric_of.values() if m >= threshold]
    unsolved = [m for _, m in metric_of.values() if m < threshold]
    if not solved or not unsolved:
        raise UsageError(f"the store needs solvers and non-solvers at {threshold:g}, and has {len(solved)} and "
                         f"{len(unsolved)}")
    base = len(solved) / len(metric_of)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # mixer -> [evaluations, solvers]
    for arch, metric in metric_of.values():
        for op in token_mixers(arch):
            counts[op][0] += 1
            counts[op][1] += metric >= threshold
    rates = {op: (s + PSEUDO_COUNT * base) / (n + PSEUDO_COUNT) for op, (n, s) in counts.items()}
    return Landscape(rates, base, solved, unsolved, len(metric_of))


def simulate(spec: str, landscape: Landscape, task_spec: str, steps: int, seed: int, budget: int,
             max_params: int | None, threshold: float = 0.99) -> tuple[list[float], list[bool]]:
    """One search: its metrics in order, and for each child of a solver (a mutation or crossover of one),
    whether it solved too."""
    strategy = make_strategy(spec, get_task(task_spec), steps=steps, seed=seed, limits=Limits(max_params=max_params))
    metrics, metric_of, heirs = [], {}, []
    for _ in range(budget):
        candidate = strategy.ask()
        metric = landscape.metric(candidate.arch, seed)
        strategy.tell(candidate, Result(status="ok", metric_name="accuracy", metric=metric))
        if any(metric_of.get(parent, 0.0) >= threshold for parent in candidate.parents):
            heirs.append(metric >= threshold)
        metrics.append(metric)
        metric_of[candidate.arch.hash] = metric
    return metrics, heirs


def stored_heirs(store: Store, records: list, threshold: float) -> list[bool]:
    """For each stored child of a stored solver (lineage), whether it solved too."""
    metric_of = {r.arch_hash: r.metric for r in records}
    heirs = []
    for child, metric in metric_of.items():
        parents, _ = store.lineage(child)
        if any(p.child_hash == child and metric_of.get(p.parent_hash, 0.0) >= threshold for p in parents):
            heirs.append(metric >= threshold)
    return heirs


def share(flags: list[bool]) -> str:
    return f"{sum(flags)} of {len(flags)}" + (f" ({sum(flags) / len(flags):.2f})" if flags else "")


def summary_row(spec: str, runs: list[list[float]], threshold: float, marks: list[int]) -> str:
    def found(m: int) -> str:
        part = sum(any(v >= threshold for v in run[:m]) for run in runs) / len(runs)
        return f"{part:.2f} ± {1.96 * (part * (1 - part) / len(runs)) ** 0.5:.2f}"

    def solvers(m: int) -> str:
        counts = [sum(v >= threshold for v in run[:m]) for run in runs]
        return f"{statistics.mean(counts):.2f}"

    firsts = [next(i for i, v in enumerate(run, 1) if v >= threshold) for run in runs if max(run) >= threshold]
    first = f"{statistics.median(firsts):g}" if firsts else "-"
    return (f"| {spec} | " + " | ".join(found(m) for m in marks) + " | " + " | ".join(solvers(m) for m in marks)
            + f" | {first} |")


def section(args, landscape: Landscape, runs: dict[str, list[list[float]]], heirs: dict[str, list[bool]],
            real_heirs: list[bool], wall: float) -> str:
    marks = sorted({m for m in (8, 16, 32, args.budget) if m <= args.budget})
    drawn = [v for run in runs.get("random", []) for v in run]
    rate = f"{sum(v >= args.threshold for v in drawn) / len(drawn):.3f}" if drawn else "not run"
    top = sorted(landscape.rates.items(), key=lambda kv: -kv[1])[:6]
    heritability = "none" if landscape.heritability is None else f"{landscape.heritability:.2f}"
    lines = [f"## Search quality (c), simulated: strategies on a landscape fitted to `{args.task}` (bench/strategy_landscape.py)",
             "", f"{now()}; {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, one process; "
             f"{wall / 60:.1f} min wall. No training: each strategy's ask/tell on "
             f"a landscape fitted to the {landscape.fitted_on} architectures of `{args.task}` trained {args.steps} steps in "
             f"`{args.store}` (solve rate {landscape.base:.3f} at {args.threshold:g}; the bench's docstring says how). "
             f"{args.seeds} search seeds per strategy, {args.budget} evaluations each, one at a time, at most "
             f"{args.max_params:,} parameters, heritability {heritability}. Random's candidates solve at {rate} per draw here. Highest fitted "
             "rates: " + ", ".join(f"{op} {r:.2f}" for op, r in top) + ".", "",
             "| strategy | " + " | ".join(f"searches with a solver @ {m}" for m in marks) + " | "
             + " | ".join(f"solvers per search @ {m}" for m in marks) + " | median first solver at |",
             "|---|" + "---|" * (2 * len(marks) + 1)]
    lines += [summary_row(spec, spec_runs, args.threshold, marks) for spec, spec_runs in runs.items()]
    simulated = "; ".join(f"{spec}: {share(flags)}" for spec, flags in heirs.items() if flags)
    lines += ["", f"How much a solver's children inherit (the landscape's fidelity): in the store, {share(real_heirs)} "
                  f"of the trained children of a solver solved too; here, {simulated or 'no strategy bred from one'}."]
    lines += ["", f"\"searches with a solver\": the share of searches whose best reached {args.threshold:g} within m "
                  "evaluations, ± a 95% normal interval; \"solvers per search\": the mean number of candidates "
                  f"at {args.threshold:g} among the first m; the median is over the searches that found one."]
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="a database of real evaluations (e.g. search_quality's)")
    parser.add_argument("--task", default="mqar:seq=64,pairs=16,vocab=128")
    parser.add_argument("--steps", type=int, help="the stored evaluations' training steps (default: the task's recipe)")
    parser.add_argument("--strategies", default=";".join(STRATEGIES), help="';'-separated")
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--budget", type=int, default=32)
    parser.add_argument("--threshold", type=float, default=0.99)
    parser.add_argument("--max-params", type=int, default=175_000)
    parser.add_argument("--heritability", default="auto", type=heritability_option,
                        help="auto (from the store's lineage), none, or a number in (0, 1]")
    parser.add_argument("--results", default=str(RESULTS))
    args = parser.parse_args(argv)
    args.strategies = [s.strip() for s in args.strategies.split(";") if s.strip()]
    return args


def heritability_option(text: str) -> str | float:
    if text in ("auto", "none"):
        return text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be auto, none or a number in (0, 1], got {text!r}")
    return value


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        run(args)
    except EinsearchError as err:
        raise SystemExit(f"error: {err}") from None


def run(args) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    task = get_task(args.task)
    args.steps = args.steps or task.recipe.steps
    for spec in args.strategies:  # a bad spec fails before minutes of simulation
        make_strategy(spec, task, steps=args.steps)
    with Store.open(f"sqlite:///{args.store}", create=False) as store:
        records = [r for r in store.evaluations()
                   if r.task == task.spec and r.steps == args.steps and r.status == "ok" and r.metric is not None]
        real_heirs = stored_heirs(store, records, args.threshold)
    if not records:
        raise UsageError(f"{args.store}: no finished evaluations of {task.spec} at {args.steps} steps (--task, --steps)")
    landscape = fit_landscape([(r.arch, r.metric) for r in records], args.threshold)
    if args.heritability == "auto":
        landscape.heritability = sum(real_heirs) / len(real_heirs) if real_heirs else None
    elif args.heritability != "none":
        landscape.heritability = args.heritability
    started = time.perf_counter()
    runs: dict[str, list[list[float]]] = {}
    heirs: dict[str, list[bool]] = {}
    for spec in args.strategies:
        searches = [simulate(spec, landscape, task.spec, args.steps, seed, args.budget, args.max_params, args.threshold)
                    for seed in range(args.seeds)]
        runs[spec] = [metrics for metrics, _ in searches]
        heirs[spec] = [flag for _, flags in searches for flag in flags]
    text = section(args, landscape, runs, heirs, real_heirs, time.perf_counter() - started)
    write_section(text, Path(args.results))
    print(text, flush=True)


if __name__ == "__main__":
    main()
