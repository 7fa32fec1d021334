"""Search quality (issue #17 part 5): what a real search finds against the library's baselines.

(a) `pareto`: per task setting, a multi-objective search (accuracy, decoding state, parameters) seeded
    with every causal baseline; the Pareto front of baselines and finds (table, canonical strings, PNG)
    and the issue's aim checked: a find no baseline dominates that reaches 0.99 with less state than the
    smallest-state baseline reaching 0.99, or that is more accurate than every baseline.
(b) `mad`: the best find of (a)'s first setting against every baseline at equal parameters (each baseline
    at the widest size not above the find's parameter count) on the MAD suite (task `mad`).
(c) `strategies`: random, evolution (plain and with a metric floor), tpe and pcfg-learn from scratch on
    one real task at equal budget, `--seeds` seeds each; best-so-far curves (PNG) and a table.

Each part writes its own section(s) of bench/RESULTS.md (only those). The stores are kept in `--out`
(default: a new temporary folder); a search already finished there is reported, not rerun.

    python bench/search_quality.py all --workers 16                       # the whole protocol (a big machine)
    python bench/search_quality.py pareto --settings 'mqar:seq=64,pairs=4,vocab=128' --budget 40 --steps 300
    python bench/search_quality.py strategies --task mqar-cpu --budget 32 --seeds 3
    python bench/search_quality.py mad --out DIR                           # after `pareto` in the same DIR
    python bench/search_quality.py all --smoke --results /tmp/r.md         # seconds: fake evaluator
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_front import aim_lines, check_aim, front, front_table, points_from_records  # noqa: E402
from quality_run import TAG, finished, load, machine, now, save_plot, search, slug, stopped, walls  # noqa: E402
from quality_seeds import check_lines, picked, seed_range  # noqa: E402
from quality_strategies import part_c  # noqa: E402
from results_md import RESULTS, write_section  # noqa: E402

from einsearch.evaluators.types import Candidate  # noqa: E402
from einsearch.report.summary import search_headline  # noqa: E402
from einsearch.search.library import baselines, library  # noqa: E402
from einsearch.search.run import SearchConfig, make_executor  # noqa: E402
from einsearch.storage.store import Store  # noqa: E402
from einsearch.tasks import get_task  # noqa: E402

log = logging.getLogger("bench.search_quality")
SETTINGS = ["mqar:seq=64,pairs=4,vocab=128", "mqar-cpu", "mqar:seq=256,pairs=16,vocab=512"]
STRATEGIES = ["random", "evolution", "evolution:metric_floor=auto", "tpe", "pcfg-learn"]  # auto: from the plateau


def a_name(spec: str) -> str:
    """The name of part (a)'s search on a task setting (one store holds every setting's)."""
    return f"quality-a-{slug(spec)}"


def plot_front(points, task: str, path: Path, threshold: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    on_front = {p.arch for p in front(points)}
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    biggest = max(p.params for p in points)
    for kind, marker in (("baseline", "s"), ("found", "o")):
        group = [p for p in points if bool(p.baseline) == (kind == "baseline")]
        if group:
            color = "C3" if kind == "baseline" else "C0"
            sizes = [20 + 120 * p.params / biggest for p in group]
            ax.scatter([p.state for p in group], [p.metric for p in group], s=sizes,
                       marker=marker, facecolors=[color if p.arch in on_front else "none" for p in group],
                       edgecolors=color, label=f"{kind} (filled: on the Pareto front)")
    for p in points:
        if p.baseline or (p.arch in on_front and p.metric >= 0.5):  # the low, crowded end stays unlabelled
            ax.annotate(p.baseline or f"e{p.evaluation}", (p.state, p.metric), fontsize=6, xytext=(3, 2),
                        textcoords="offset points")
    ax.axhline(threshold, color="grey", lw=0.8, ls="--")
    ax.set_xscale("symlog", linthresh=100)  # a model without token mixing has no state: 0 stays on the plot
    ax.set_xlim(-20, 1.6 * max(p.state for p in points) + 1)
    ax.set_xlabel("decoding state per sequence (floats, symlog)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{task}: marker size ~ parameters", fontsize=9)
    save_plot(fig, ax, path)


def part_a(args, store: Store, results: Path) -> None:
    for spec in args.settings:
        task = get_task(spec)
        named = baselines(task, max_params=args.max_params)
        config = SearchConfig(name=a_name(spec), task=spec, strategy=args.strategy, budget=args.budget,
                              steps=args.steps, max_params=args.max_params, workers=args.workers,
                              executor=args.executor, seed_with="all", keep_weights=0, objectives=args.objectives,
                              candidate_time_limit_s=args.candidate_time_limit, seed=args.seed,
                              train_seeds=args.train_seeds,
                              time_limit_s=args.time_limit and 60 * args.time_limit)
        timing = search(store, config, args.out)
        stored = store.get_search(config.name).config
        records = finished(store, config.name)
        points = points_from_records(records, task.spec)
        failed = [r for r in records if r.status != "ok"]
        aim = check_aim(points, args.threshold)
        png = results.with_name(f"search_quality_pareto_{slug(spec)}.png")
        if points:
            plot_front(points, spec, png, args.threshold)
        lines = [f"## Search quality (a): Pareto front, `{spec}` {TAG}", "",
                 f"{timing}; {machine(stored['executor'], stored['workers'])}. Strategy `{stored['strategy']}`, "
                 f"objectives `{stored['objectives']}`, "
                 f"seeded with all {len(named)} causal baselines of the library at most {stored['max_params']:,} "
                 f"parameters (each at the widest width that fits); budget {stored['budget']} evaluations "
                 f"({len(records)} recorded, {len(failed)} failed{stopped(stored, records)}), "
                 f"{stored['steps']} training steps each at the "
                 f"task's recipe otherwise, {seeds_text(stored)}; width sampled by the search. Accuracy on held-out "
                 "queries; decoding state and parameters from `check` at the task's length." + walls(records), "",
                 f"![Pareto front]({png.name})", "",
                 "Pareto front of (accuracy, decoding state, parameters) over the baselines and every find:", "",
                 *front_table(points), "", *aim_lines(aim, args.threshold, f"in this run ({own_seeds(stored)})"), "",
                 *seed_check(args, store, stored, points, aim),
                 "All evaluations (accuracy, state, params, eval):", "",
                 *[f"- e{p.evaluation} {p.label}: {p.metric:.3f}, {p.state:,}, {p.params:,}: `{p.compact}`"
                   for p in points],
                 *[f"- e{r.id} failed ({r.status}): `{r.arch}`: {(r.error or '')[:120]}" for r in failed], "",
                 "Canonical strings of the front:", "",
                 *[f"- e{p.evaluation}: `{p.arch}`" for p in front(points)]]
        text = "\n".join(lines)
        print(text, flush=True)
        write_section(text, results)


def own_seeds(stored: dict) -> str:
    n = stored.get("train_seeds", 1)
    return "one training seed" if n == 1 else f"the mean of {n} training seeds"


def seeds_text(stored: dict) -> str:
    n = stored.get("train_seeds", 1)
    return "one training seed" if n == 1 else f"scored by {own_seeds(stored)} (`--train-seeds {n}`)"


def seed_check(args, store: Store, stored: dict, points, aim) -> list[str]:
    """The best finds and baselines trained again on `--check-seeds` seeds; the aim on their means."""
    own = stored.get("train_seeds", 1)
    if args.check_seeds <= own or not points:
        return []
    from einsearch.search.recheck import check_name, recheck

    checked = picked(points, aim, args.check_top)
    rows = recheck(store, stored["name"], seeds=args.check_seeds, archs=[p.arch for p in checked],
                   executor=args.executor, workers=args.workers, candidate_time_limit_s=args.candidate_time_limit)
    runs = {row.arch: dict(enumerate(row.runs.values())) for row in rows}  # seeds 0..own-1: the search's own
    trained = [r for r in store.evaluations(check_name(stored["name"])) if r.wall_time_s is not None]
    when = min((r.created_at for r in trained), default=None)
    mine = "one training seed (seed 0)" if own == 1 else f"{own} training seeds ({seed_range(0, own - 1)})"
    again = seed_range(own, args.check_seeds - 1)
    return [f"**Seed check** (`einsearch recheck`). The search trains each candidate on {mine}. Its "
            f"{args.check_top} best finds (those the aim names first) and its {args.check_top} most accurate "
            f"baselines (and the aim's reference) trained again on {again} at the same "
            f"steps and recipe, same executor ({len(trained)} runs, "
            f"{sum(r.wall_time_s for r in trained) / 60:.1f} worker-minutes"
            + (f", from {when:%a %b %d %H:%M} UTC" if when else "") + "). The other baselines were not trained "
            "again: one of them could jump on another seed.", "",
            *check_lines(checked, runs, args.check_seeds, args.threshold), ""]


def part_b(args, store: Store, results: Path) -> None:
    arch = args.arch
    if arch is None and store.find_search(a_name(args.settings[0])) is not None:
        headline = search_headline(store, a_name(args.settings[0]))
        arch = headline.found.arch if headline.found else None
    if arch is None:
        log.warning("mad: no best find (run `pareto` into the same --out first, or give --arch)")
        return
    task = get_task(args.mad_task)
    from einsearch.grammar import check, parse

    params = check(parse(arch), task).params
    wanted = None if args.baselines == "all" else set(args.baselines.split(","))
    found, skipped = library(task, max_params=params)
    entries = [("best find", arch)] + [(n, str(a)) for n, a in found if wanted is None or n in wanted]
    skipped = [(n, why) for n, why in skipped if wanted is None or n in wanted]
    members = list(task.members())  # one candidate per member task: per-task scores, finer parallelism
    executor = make_executor(SearchConfig(name="mad", task=task.spec, workers=args.workers, executor=args.executor,
                                          max_params=None, candidate_time_limit_s=args.candidate_time_limit))
    steps = args.steps or task.recipe.steps
    before, when, started = load(), now(), time.perf_counter()
    keys = {executor.submit(Candidate(a, member.spec, steps, seed)): (i, name)
            for i, (_, a) in enumerate(entries) for name, member in members for seed in range(args.seeds)}
    scores: dict[tuple[int, str], list[float]] = {}
    errors: dict[int, str] = {}
    done = 0
    try:
        while done < len(keys):
            for key, result in executor.wait():
                done += 1
                i, name = keys[key]
                if result.ok:
                    scores.setdefault((i, name), []).append(result.metric)
                else:
                    errors[i] = str(result.error)[:100]
    finally:
        executor.shutdown()
    names = list(dict.fromkeys(name for name, _ in members))
    lines = [f"## Search quality (b): MAD at equal parameters {TAG}", "",
             f"{when}; load {before} at the start and {load()} at the end; "
             f"{(time.perf_counter() - started) / 60:.1f} min wall; {machine(args.executor, args.workers)}. "
             f"Task `{task.spec}`, {steps} steps per member task, {args.seeds} training seed(s); "
             f"{'every baseline' if args.baselines == 'all' else 'baselines ' + args.baselines} at the widest "
             f"size with at most {params:,} parameters (the find's count on this task)"
             + (f"; left out: {'; '.join(f'{n} ({why})' for n, why in skipped)}" if skipped else "")
             + ". Score: MAD's (mean accuracy per task over its settings and seeds, then the mean over tasks).", "",
             "| | params | MAD score | " + " | ".join(names) + " | architecture |",
             "|---|---|---|" + "---|" * len(names) + "---|"]
    rows = []
    for i, (label, a) in enumerate(entries):
        per_task = {n: statistics.mean(scores[(i, n)]) for n in names if (i, n) in scores}
        score = statistics.mean(per_task.values()) if i not in errors and len(per_task) == len(names) else None
        rows.append((score if score is not None else -1.0, label, a, per_task, i))
    top = max(row[0] for row in rows)
    for score, label, a, per_task, i in sorted(rows, key=lambda row: (row[1] != "best find", -row[0])):
        cell = f"failed: {errors.get(i, '?')}" if score < 0 else f"**{score:.3f}**" if score == top else f"{score:.3f}"
        lines.append(f"| {label} | {check(parse(a), task).params:,} | {cell} | "
                     + " | ".join(f"{per_task[n]:.3f}" if n in per_task else "-" for n in names) + f" | `{a}` |")
    text = "\n".join(lines)
    print(text, flush=True)
    write_section(text, results)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["pareto", "mad", "strategies", "all"])
    parser.add_argument("--settings", default=";".join(SETTINGS), help="(a) ';'-separated task specs")
    parser.add_argument("--task", default="mqar-cpu", help="(c) the task")
    parser.add_argument("--mad-task", default="mad", help="(b) the MAD suite's spec, e.g. mad:settings=all")
    parser.add_argument("--arch", help="(b) the architecture to compare (default: (a)'s best find, first setting)")
    parser.add_argument("--baselines", default="all", help="(b) comma-separated baseline names, or all")
    parser.add_argument("--budget", type=int, default=64, help="evaluations per search (baselines included in (a))")
    parser.add_argument("--steps", type=int, help="training steps per candidate (default: the task's recipe)")
    parser.add_argument("--max-params", type=int, default=175_000)
    parser.add_argument("--strategy", default="evolution:population=16,sample_size=4,metric_floor=0.9", help="(a)")
    parser.add_argument("--objectives", default="accuracy,state,params", help="(a)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="(c) ';'- or ','-separated")
    parser.add_argument("--seeds", type=int, default=3, help="(b) training seeds, (c) search seeds")
    parser.add_argument("--seed", type=int, default=0, help="(a) the search's seed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executor", default="ray")
    parser.add_argument("--threshold", type=float, default=0.99, help="(a) accuracy that counts as solved")
    parser.add_argument("--train-seeds", type=int, default=1,
                        help="(a) training seeds per candidate in the search; each is scored by the mean")
    parser.add_argument("--check-seeds", type=int, default=3,
                        help="(a) training seeds of the seed check, the search's own included (no more: no check)")
    parser.add_argument("--check-top", type=int, default=3, help="(a) finds and baselines the seed check trains")
    parser.add_argument("--candidate-time-limit", type=float, default=None, help="seconds per candidate")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="minutes per search: stop asking for candidates after this long (running ones finish)")
    parser.add_argument("--out", help="folder of the stores (default: a new temporary folder)")
    parser.add_argument("--results", default=str(RESULTS), help="the RESULTS.md to write (PNGs beside it)")
    parser.add_argument("--smoke", action="store_true", help="fake evaluator, tiny budgets (a test of the script)")
    args = parser.parse_args(argv)
    args.settings = [s.strip() for s in args.settings.split(";") if s.strip()]
    sep = ";" if ";" in args.strategies else ","
    args.strategies = [s.strip() for s in args.strategies.split(sep) if s.strip()]
    if args.smoke:
        args.executor, args.budget, args.steps, args.seeds = "fake", min(args.budget, 18), 2, min(args.seeds, 2)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args.out = Path(args.out or tempfile.mkdtemp(prefix="einsearch-quality-"))
    args.out.mkdir(parents=True, exist_ok=True)
    log.warning("stores in %s", args.out)
    results = Path(args.results)
    with Store.open(f"sqlite:///{args.out / 'quality.db'}") as store:
        if args.part in ("pareto", "all"):
            part_a(args, store, results)
        if args.part in ("mad", "all"):
            part_b(args, store, results)
        if args.part in ("strategies", "all"):
            part_c(args, store, results)


if __name__ == "__main__":
    main()
