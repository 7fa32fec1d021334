"""Part (c) of bench/search_quality.py: search strategies from scratch on one task at equal budget, seed by
seed; best-so-far curves (PNG) and a table."""
from __future__ import annotations

import statistics
from pathlib import Path

from quality_front import best_so_far, combined, compare, first_reaching
from quality_run import TAG, finished, machine, save_plot, search, slug
from results_md import write_section

from einsearch.search.run import SearchConfig
from einsearch.storage.store import Store


def plot_curves(curves: dict[str, list[list[float]]], task: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for spec, runs in curves.items():
        n = min(len(r) for r in runs)
        xs = range(1, n + 1)
        columns = list(zip(*(r[:n] for r in runs)))
        ax.plot(xs, [statistics.mean(v) for v in columns], label=f"{spec} ({len(runs)} seeds)")
        ax.fill_between(xs, [min(v) for v in columns], [max(v) for v in columns], alpha=0.12)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best accuracy so far (mean; shaded: min-max over seeds)")
    ax.set_title(task, fontsize=9)
    save_plot(fig, ax, path)


def part_c(args, store: Store, results: Path) -> None:
    """Seed by seed, every strategy once: a run cut short still compares all of them on the seeds it
    reached; the section is rewritten after each search."""
    metrics: dict[str, list[list[float | None]]] = {spec: [] for spec in args.strategies}  # per search, None: failed
    failures = dict.fromkeys(args.strategies, 0)
    timings: list[str] = []
    for seed in range(args.seeds):
        for spec in args.strategies:
            config = SearchConfig(name=f"quality-c-{spec}-{seed}", task=args.task, strategy=spec, budget=args.budget,
                                  steps=args.steps, max_params=args.max_params, workers=args.workers,
                                  executor=args.executor, keep_weights=0, seed=seed,
                                  candidate_time_limit_s=args.candidate_time_limit,
                                  time_limit_s=args.time_limit and 60 * args.time_limit)
            timings.append(search(store, config, args.out))
            records = finished(store, config.name)
            metrics[spec].append([r.metric if r.status == "ok" else None for r in records])
            failures[spec] += sum(r.status != "ok" for r in records)
            text = c_section(args, {k: v for k, v in metrics.items() if v}, failures, timings, results)
    print(text, flush=True)


def c_section(args, metrics: dict[str, list[list[float | None]]], failures: dict[str, int], timings: list[str],
              results: Path) -> str:
    """(c)'s section from the searches finished so far (each one's metrics in order), written to `results`;
    its text."""
    curves = {spec: [best_so_far(values) for values in runs] for spec, runs in metrics.items()}
    png = results.with_name(f"search_quality_curves_{slug(args.task)}.png")
    plot_curves(curves, args.task, png)
    common = min(len(r) for runs in curves.values() for r in runs)  # evaluations every search reached
    marks = sorted({m for m in (4, 8, 16, 32, common) if 1 <= m <= common})
    limit = f"; each search stopped asking after {args.time_limit:g} min" if args.time_limit else ""
    done = [len(runs) for runs in curves.values()]
    partial = "" if min(done) == args.seeds and len(curves) == len(args.strategies) else (
        f" **Partial: {sum(done)} of {args.seeds * len(args.strategies)} searches finished** (the same command "
        f"with the same `--out` goes on).")
    lines = [f"## Search quality (c): strategies at equal budget, `{args.task}` {TAG}", "",
             f"{combined(timings)}; {machine(args.executor, args.workers)}. Task `{args.task}`, budget "
             f"{args.budget} evaluations per search{limit}, from scratch (no seeding), {args.steps or 'recipe'} "
             f"steps, at most {args.max_params:,} parameters, {args.seeds} search seeds per strategy. Best accuracy "
             f"so far, mean ± std over seeds, after m evaluations (in submission order); every search reached "
             f"{common}.{partial}", "",
             f"![best so far]({png.name})", "",
             "| strategy | evaluations per search | " + " | ".join(f"best @ {m}" for m in marks)
             + f" | best at the end | first >= {args.threshold:g} at | evaluations >= {args.threshold:g} | failed |",
             "|---|---|" + "---|" * (len(marks) + 4)]

    def cell(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {spread:.3f}"

    for spec, runs in curves.items():
        counts = ", ".join(str(len(r)) for r in runs)
        reached = ", ".join(str(first_reaching(r, args.threshold) or "-") for r in runs)
        solving = ", ".join(str(sum(v is not None and v >= args.threshold for v in values)) for values in metrics[spec])
        lines.append(f"| {spec} | {counts} | " + " | ".join(cell([r[m - 1] for r in runs]) for m in marks)
                     + f" | {cell([r[-1] for r in runs])} | {reached} | {solving} | {failures[spec]} |")
    at = {spec: statistics.mean(r[common - 1] for r in runs) for spec, runs in curves.items()}
    pcfgs = [s for s in at if s.startswith("pcfg-learn")]
    if pcfgs and "random" in at:
        versus = "; ".join(f"{pcfg} ({at[pcfg]:.3f}) {compare(at[pcfg], at['random'])} random" for pcfg in pcfgs)
        lines += ["", f"At {common} evaluations, on the mean best found: {versus} ({at['random']:.3f}; a match: "
                      f"within 0.005). \"first >= "
                      f"{args.threshold:g} at\": the evaluation after which each search's best first reached it "
                      f"(-: not within its budget); \"evaluations >= {args.threshold:g}\": how many of each search's "
                      f"candidates did, which tells strategies apart where the best saturates."]
    text = "\n".join(lines)
    write_section(text, results)
    return text
