"""The demo (`make demo`: scripts/demo.sh on examples/demo-search.toml), timed, and its result written to the
"Demo" section of bench/RESULTS.md: wall time, load, every candidate's accuracy, parameters and decoding
state, and the best-found-vs-best-baseline lines exactly as the demo printed them.

    python bench/demo.py                       # runs the demo into a fresh folder, then writes the section
    python bench/demo.py --recorded OUT --log LOG --wall S --load-before L1 --load-after L2
                                               # writes the section of a run made by hand (OUT: its folder)
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results_md import write_section  # noqa: E402

from einsearch.report.summary import search_headline  # noqa: E402
from einsearch.storage import Store  # noqa: E402
from einsearch.report.facts import arch_facts  # noqa: E402
from einsearch.report.data import baseline_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HEADLINE = ("best found", "best baseline", "found vs baseline")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_demo(out: Path, log: Path) -> tuple[float, str, str]:
    """Run scripts/demo.sh into `out` (stdout and stderr to `log`); (wall seconds, load before, load after)."""
    before = load_average()
    start = time.perf_counter()
    env = dict(os.environ, OUT=str(out), BIN=os.environ.get("BIN", str(Path(sys.executable).parent)))
    with open(log, "w") as handle:
        subprocess.run(["bash", "scripts/demo.sh"], cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                       check=True)
    return time.perf_counter() - start, before, load_average()


def printed_headline(log_text: str) -> list[str]:
    """The last headline the demo printed (its final lines), as printed."""
    lines = [line.rstrip() for line in log_text.splitlines()]
    starts = [i for i, line in enumerate(lines) if line.startswith(HEADLINE[0])]
    if not starts:
        return []
    block = lines[starts[-1]:starts[-1] + 3]
    return [line for line in block if line.startswith(HEADLINE)]


def _shared(*loads: str) -> str:
    try:
        busiest = max(float(load.split()[0]) for load in loads)
    except (ValueError, IndexError):
        return ""
    if busiest <= (os.cpu_count() or 1):
        return ""
    return ": the machine was shared with other jobs, so wall times are inflated against an idle one"


def section(db: str, log_text: str, wall_s: float, load_before: str, load_after: str, when: str) -> str:
    with Store.open(db, create=False) as store:
        records = store.evaluations("demo")
        config = store.get_search("demo").config
        headline = search_headline(store, "demo")
    rows = []
    for r in records:
        facts = arch_facts(r.arch, r.task)
        kind = baseline_name(r.arch) or "found"
        metric = "-" if r.metric is None else f"{r.metric:.3f}"
        wall = "-" if r.wall_time_s is None else f"{r.wall_time_s:.0f}"
        state = "-" if facts.state_size is None else f"{facts.state_size:,}"
        params = "-" if r.params is None else f"{r.params:,}"
        shown = facts.compact.replace("|", "\\|")  # a table cell
        rows.append(f"| e{r.id} | {kind} | {r.status} | {metric} | {params} | {state} | {wall} | `{shown}` |")
    printed = printed_headline(log_text)
    text = [
        "## Demo (bench/demo.py: scripts/demo.sh, examples/demo-search.toml)",
        "",
        f"{when}; {platform.machine()}, {os.cpu_count()} cores, {platform.system()}, Python "
        f"{platform.python_version()}; load average (1, 5, 15 min) {load_before} before and {load_after} after"
        f"{_shared(load_before, load_after)}. Task "
        f"`{config.get('task')}`, strategy `{config.get('strategy')}` seeded with `{config.get('seed_with')}`, "
        f"budget {config.get('budget')}, {config.get('steps')} steps per candidate at the task's recipe otherwise, "
        f"at most {config.get('max_params') or 0:,} parameters, local Ray with {config.get('workers')} workers, 1 CPU "
        f"(torch thread) each.",
        "",
        f"Wall time of the whole demo (Ray start, search, leaderboard, export, load and run): {wall_s:.0f} s "
        f"({wall_s / 60:.1f} min).",
        "",
        "| eval | baseline | status | accuracy | params | decoding state | wall s | architecture |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "As printed at the end of the demo:" if printed else "Not found in the demo's output; from the store:",
        "",
        "```",
        *(printed or headline.lines()),
        "```",
        "",
        "Canonical strings:",
        "",
        *[f"- e{r.id}: `{r.arch}`" for r in records],
    ]
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recorded", help="the OUT folder of a demo already run (with --log and --wall)")
    parser.add_argument("--log", help="that run's output")
    parser.add_argument("--wall", type=float, help="that run's wall seconds")
    parser.add_argument("--load-before", default="?")
    parser.add_argument("--load-after", default="?")
    parser.add_argument("--when", help="when that run was made (default: now)")
    args = parser.parse_args()
    when = args.when or datetime.now(timezone.utc).strftime("%a %b %d %H:%M UTC %Y")
    if args.recorded:
        out, log, wall = Path(args.recorded), Path(args.log), args.wall
        before, after = args.load_before, args.load_after
    else:
        out = Path(tempfile.mkdtemp(prefix="einsearch-demo-"))
        log = out / "demo.log"
        wall, before, after = run_demo(out, log)
    text = section(f"sqlite:///{out / 'einsearch.db'}", log.read_text(), wall, before, after, when)
    write_section(text)
    print(text)


if __name__ == "__main__":
    main()
