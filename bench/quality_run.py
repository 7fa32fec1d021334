"""How bench/search_quality.py runs a search and describes the run: the machine, the load, the wall times,
a search resumed or reported from its store."""
from __future__ import annotations

import logging
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

from einsearch.search.loop import INTERRUPTED
from einsearch.search.run import SearchConfig, run_search
from einsearch.storage.store import Store

log = logging.getLogger("bench.search_quality")
TAG = "(bench/search_quality.py)"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def now() -> str:
    return datetime.now(timezone.utc).strftime("%a %b %d %H:%M UTC %Y")


def machine(executor: str, workers: int) -> str:
    import torch

    how = (f"in-process, one candidate at a time, torch's default {torch.get_num_threads()} threads"
           if executor == "local" else f"{workers} workers (1 CPU, 1 torch thread each)")
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, executor `{executor}`: {how}"


def walls(records: list) -> str:
    """Per-candidate wall seconds (one worker each): median and range."""
    times = sorted(r.wall_time_s for r in records if r.wall_time_s is not None)
    if not times:
        return ""
    return (f" Candidate wall time (one worker): median {statistics.median(times):.0f} s, "
            f"{times[0]:.0f}-{times[-1]:.0f} s, {sum(times) / 60:.0f} worker-minutes in all.")


def slug(spec: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in spec).strip("_")


def search(store: Store, config: SearchConfig, out: Path) -> str:
    """Run `config` into `store` unless it already finished there; when and how long it ran, and the load
    average before and after (kept beside the store, so a report of a stored run says it too)."""
    sidecar = out / f"{config.name}.timing.txt"
    found = store.find_search(config.name)
    if found is not None and found.status == "finished":
        log.warning("%s: already finished in this store, reported as stored", config.name)
        return sidecar.read_text().strip() if sidecar.exists() else "a stored run (its time and load not recorded)"
    before, when, started = load(), now(), time.perf_counter()
    run_search(config, store, resume=found is not None)
    timing = (f"{when}; load average (1, 5, 15 min) {before} at the start and {load()} at the end; "
              f"{(time.perf_counter() - started) / 60:.1f} min wall" + ("; resumed" if found is not None else ""))
    sidecar.write_text(timing + "\n")
    return timing


def stopped(config: dict, records: list) -> str:
    limit = config.get("time_limit_s")
    if limit and len(records) < config["budget"]:
        return f"; stopped asking after the {limit / 60:.0f}-minute limit"
    return ""


def save_plot(fig, ax, path: Path) -> None:
    """Legend, grid, tight layout; written to `path` and closed."""
    import matplotlib.pyplot as plt

    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def finished(store: Store, name: str) -> list:
    """A search's evaluations in submission order, less those a killed run left behind (resuming re-ran them)."""
    return sorted((r for r in store.evaluations(name) if r.error != INTERRUPTED), key=lambda r: r.id)
