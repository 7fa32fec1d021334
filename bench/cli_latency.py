"""CLI latency: how long `einsearch` takes to answer, each command a fresh process, against `python -c pass`.

Targets (a quiet machine): `--help` and every command's `--help` under 0.5 s; the commands that do
not train (leaderboard, searches, show, baselines, tasks) under 1.5 s; `sample -n 5` under 3 s.
Each is run --runs times; the median wall-clock and CPU (user + system, of the child) are reported,
with the load average, since a loaded machine stretches wall clock far more than CPU time.
`sample -n 5` is measured with the parameter-count cache warm (the usual case: it is filled once
per machine and version of the ops code) and once with it empty (a fresh machine's first call).
The store and listing commands answer from einsearch.memo's files after their first call (which
imports torch to fill them; for `leaderboard` the search that made the database filled them): each
is run once on empty files ("first call") and then --runs times.

Writes the "CLI latency" section of bench/RESULTS.md (--no-write: print only).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_md import write_section

CLI = [sys.executable, "-m", "einsearch.cli"]
TASK = "toy-causal"


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run; the command must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip()[-300:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_of(command: list[str], runs: int, env: dict[str, str] | None = None) -> tuple[float, float]:
    samples = [timed(command, env) for _ in range(runs)]
    return statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples)


def command_names() -> list[str]:
    code = ("import json, typer\nfrom einsearch.cli import _load_commands, app\n_load_commands()\n"
            "print(json.dumps(sorted(typer.main.get_command(app).list_commands(None))))")
    return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                     check=True).stdout)


def make_db(folder: Path, env: dict[str, str]) -> str:
    """A small database (a 4-evaluation search on the fake executor) for the store commands."""
    db = f"sqlite:///{folder / 'bench.db'}"
    subprocess.run(CLI + ["search", "--task", TASK, "--strategy", "random", "--budget", "4", "--executor", "fake",
                          "--max-params", "200k", "--name", "bench", "--db", db], capture_output=True, check=True,
                   env=env)
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--note", default="", help="e.g. what else the machine was doing")
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows: list[tuple[str, float | None, float, float]] = []  # (what, target s, wall, cpu)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # Empty caches of its own: first calls pay for filling them, as on a fresh machine.
        env = {**os.environ, "EINSEARCH_MEMO": str(folder / "memo"), "EINSEARCH_PARAM_CACHE": str(folder / "params")}
        db = make_db(folder, env)
        base = median_of([sys.executable, "-c", "pass"], args.runs)
        rows.append(("python -c pass", 0, *base))
        rows.append(("einsearch --help", 0.5, *median_of(CLI + ["--help"], args.runs)))
        helps = [median_of(CLI + [name, "--help"], max(1, args.runs // 2)) for name in command_names()]
        worst = max(helps, key=lambda wc: wc[1])
        rows.append((f"slowest of {len(helps)} `COMMAND --help`", 0.5, *worst))
        rows.append(("median `COMMAND --help`", 0.5, statistics.median(w for w, _ in helps),
                     statistics.median(c for _, c in helps)))
        for what, extra in [("leaderboard", ["leaderboard", "--db", db]), ("searches", ["searches", "--db", db]),
                            ("show 1", ["show", "1", "--db", db]), ("tasks", ["tasks"]), ("ops", ["ops"]),
                            ("baselines", ["baselines", "--task", TASK])]:
            first = timed(CLI + extra, env)
            rows.append((f"einsearch {what}, first call", None, *first))
            rows.append((f"einsearch {what}", 1.5, *median_of(CLI + extra, args.runs, env)))
        sample = CLI + ["sample", "-n", "5", "--task", TASK]
        cold = {**env, "EINSEARCH_PARAM_CACHE": str(folder / "params-cold")}
        rows.append(("sample -n 5, parameter-count cache empty (first call)", 3, *timed(sample, cold)))
        rows.append(("einsearch sample -n 5 (cache filled)", 3, *median_of(sample, args.runs, cold)))
    load_after = os.getloadavg()
    lines = [
        "## CLI latency (bench/cli_latency.py)",
        f"{datetime.date.today()} on {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"each a fresh process, median of {args.runs} runs (each `--help`: {max(1, args.runs // 2)}). Load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after{'; ' + args.note if args.note else ''}. "
        "CPU is user + system time of the child; under load wall clock stretches, CPU much less. "
        "The targets are wall clock on a quiet machine.",
        "",
        "| command | target (s) | wall (s) | CPU (s) | CPU beyond `python -c pass` (s) |",
        "|---|---|---|---|---|",
    ]
    for what, target, wall, cpu in rows:
        lines.append(f"| {what} | {target or '-'} | {wall:.2f} | {cpu:.2f} | {cpu - base[1]:.2f} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
