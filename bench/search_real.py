"""Search on a real task: the best architecture a search finds against the best seeded baseline.

Regularized evolution seeded with every causal baseline of the library (`--seed-with all`), on a
small multi-query associative recall task, every candidate trained for real under the same budget
(steps, parameter limit). The baselines are the first candidates, so "best baseline" and "best
found" come from one search with one training budget. Writes the "Search on a real task" section of
bench/RESULTS.md (only that section).

    .venv/bin/python bench/search_real.py                 # ~15-30 min on 2 cores
    .venv/bin/python bench/search_real.py --budget 6 --steps 20 --print-only   # smoke run
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time

from einsearch.search.library import baselines
from einsearch.search.run import SearchConfig, run_search
from einsearch.storage.store import Store
from einsearch.tasks import get_task
from results_md import write_section

SECTION = "## Search on a real task (bench/search_real.py)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mqar:seq=64,pairs=8,vocab=128")
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--max-params", type=int, default=80_000)
    parser.add_argument("--strategy", default="evolution:population=16,sample_size=4")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--print-only", action="store_true")
    args = parser.parse_args()
    named = {str(arch): name for name, arch in baselines(get_task(args.task), max_params=args.max_params)}
    config = SearchConfig(name="bench-real", task=args.task, strategy=args.strategy, budget=args.budget,
                          steps=args.steps, max_params=args.max_params, workers=args.workers, executor="ray",
                          seed_with="all", keep_weights=0)
    with tempfile.TemporaryDirectory() as tmp, Store.open(f"sqlite:///{tmp}/bench.db") as store:
        started = time.perf_counter()
        progress = run_search(config, store)
        minutes = (time.perf_counter() - started) / 60
        records = [r for r in store.evaluations("bench-real") if r.status == "ok" and r.metric is not None]
        failed = progress.failed
    seeded = sorted((r for r in records if r.arch in named), key=lambda r: -r.metric)
    found = sorted((r for r in records if r.arch not in named), key=lambda r: -r.metric)
    lines = [SECTION, "",
             f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, {args.workers} Ray workers "
             f"(1 CPU each); {minutes:.0f} min wall. Task `{args.task}`; strategy `{args.strategy}` seeded "
             f"with all {len(named)} causal baselines; budget {args.budget} evaluations ({failed} failed), "
             f"{args.steps} training steps each, at most {args.max_params:,} parameters. Metric: accuracy "
             "on held-out query positions (one training seed).", "",
             "| | architecture | accuracy | params |", "|---|---|---|---|"]
    for label, rows in (("best baseline", seeded[:3]), ("best found by search", found[:3])):
        for i, r in enumerate(rows):
            name = f"{named[r.arch]}: " if r.arch in named else ""
            lines.append(f"| {label if i == 0 else ''} | {name}`{r.arch}` | {r.metric:.3f} | {r.params:,} |")
    if seeded and found:
        best, base = found[0].metric, seeded[0].metric
        verdict = "beats" if best > base else "does not beat"
        lines += ["", f"The best new architecture ({best:.3f}) {verdict} the best seeded baseline ({base:.3f}) "
                      "at this budget."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.print_only:
        write_section(text)


if __name__ == "__main__":
    main()
