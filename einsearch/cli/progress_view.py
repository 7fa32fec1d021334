"""Progress of a long command (search, evaluate, fidelity): a live panel on a terminal, plain log
lines elsewhere.

    with ProgressView("search recall-evo", total=200) as view:
        view.update(done=3, counts={"running": 2, "failed": 1}, top=[("0.912", "120", "64·2×[attn(h4) | glu]")])
        view.log("3/200 ok acc=0.912 ...")

On a terminal (rich `Live`, on stderr) the panel shows a bar with done/total, elapsed time and ETA,
the counts, and a table of the best candidates; `log` lines scroll above it. When the stream is not
a terminal (a file, a pipe, CI) nothing is redrawn: `log` writes one plain line (no control
characters, no markup) and `update` writes nothing. `search_update` feeds a view from the search
loop's `Progress`; other commands call `update` and `log` directly.
"""
from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, Sequence

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from einsearch.search.loop import Finished, Progress

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # everything but tab and newline


def plain(text: str) -> str:
    """`text` without control characters (escape sequences included), on one line."""
    return _CONTROL.sub("", text.replace("\n", " "))


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressView:
    """Progress of `total` units of work (None: unknown) titled `title`, rendered on `console`
    (default: stderr). `live`: None decides by whether the console is a terminal."""

    def __init__(self, title: str, total: int | None = None, *, console: Console | None = None,
                 live: bool | None = None, top_header: Sequence[str] = ("metric", "steps", "architecture")):
        self.title, self.total = title, total
        self.console = console or Console(stderr=True)
        self.live = (self.console.is_terminal and not self.console.is_dumb_terminal) if live is None else live
        self.top_header = tuple(top_header)
        self.done = 0
        self.counts: dict[str, int] = {}
        self.top: list[tuple[str, ...]] = []
        self.note = ""
        self.started = time.monotonic()
        self._live: Live | None = None

    # ---- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> "ProgressView":
        self.started = time.monotonic()
        if self.live:
            self._live = Live(console=self.console, get_renderable=self.render, refresh_per_second=4,
                              transient=False, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    # ---- what commands call ---------------------------------------------------------------------
    def update(self, done: int | None = None, *, total: int | None = None, counts: dict[str, int] | None = None,
               top: Sequence[tuple[str, ...]] | None = None, note: str | None = None) -> None:
        """New figures for the panel (a no-op for the plain log, which only has `log` lines)."""
        if done is not None:
            self.done = done
        if total is not None:
            self.total = total
        if counts is not None:
            self.counts = dict(counts)
        if top is not None:
            self.top = [tuple(row) for row in top]
        if note is not None:
            self.note = note
        if self._live is not None:
            self._live.refresh()

    def log(self, line: str) -> None:
        """One line of history: above the panel on a terminal, a plain line otherwise."""
        if self._live is not None:
            self._live.console.print(Text(plain(line)), highlight=False, soft_wrap=True)
        else:
            self.console.file.write(plain(line) + "\n")
            self.console.file.flush()

    # ---- the panel ------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def eta(self) -> float | None:
        """Seconds left at the average pace so far; None before the first unit or without a total."""
        if not self.total or self.done <= 0:
            return None
        return max(0.0, self.elapsed() / self.done * (self.total - self.done))

    def status_line(self) -> str:
        of = f"/{self.total}" if self.total else ""
        return f"{self.done}{of}  elapsed {clock(self.elapsed())}  eta {clock(self.eta())}"

    def counts_line(self) -> str:
        counts = "  ".join(f"{name} {value}" for name, value in self.counts.items())
        return "  ".join(part for part in (counts, self.note) if part)

    def render(self) -> RenderableType:
        head = Table.grid(padding=(0, 1))
        head.add_row(Text(self.title, style="bold"),
                     ProgressBar(total=float(self.total), completed=float(self.done), width=30) if self.total
                     else Spinner("dots"), Text(self.status_line()))
        parts: list[RenderableType] = [head]
        if self.counts_line():
            parts.append(Text(self.counts_line()))
        if not self.top:
            return Group(*parts)
        table = Table(box=box.SIMPLE_HEAD, title=f"top {len(self.top)}", title_justify="left")
        table.add_column("#", no_wrap=True)
        for name in self.top_header[:-1]:
            table.add_column(name, no_wrap=True)
        table.add_column(self.top_header[-1], overflow="fold")  # compact notation: folded, never cut
        for rank, row in enumerate(self.top, 1):
            table.add_row(str(rank), *(Text(cell) for cell in row))
        return Group(*parts, table)


# ---- the search loop's Progress -----------------------------------------------------------------
def _metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def finished_line(finished: "Finished", done: int, budget: int) -> str:
    """One evaluation as a log line: 'search: 7/40 ok acc=0.8125 steps=120 64·2×[attn(h4) | glu]'."""
    from einsearch.grammar.compact import compact

    if finished.status == "ok" or finished.error is None:
        what = f"{finished.status} {finished.metric_name or 'metric'}={_metric(finished.metric)}"
    else:
        what = f"{finished.status} ({finished.error.strip().splitlines()[0][:120] if finished.error.strip() else '?'})"
    cached = " cached" if finished.cached else ""
    return f"{done}/{budget} {what} steps={finished.steps}{cached} {compact(finished.arch)} {finished.arch.hash[:12]}"


def search_update(view: ProgressView, progress: "Progress") -> None:
    """Feed `view` from the search loop: a log line per finished evaluation, then the panel's figures
    (counts and the current top, in the compact notation)."""
    from einsearch.grammar.compact import compact

    first = progress.done - len(progress.recent) + 1
    for i, finished in enumerate(progress.recent):
        view.log(f"{view.title}: {finished_line(finished, first + i, progress.budget)}")
    best = f"best {_metric(progress.best)}" if progress.best is not None else ""
    view.update(progress.done, total=progress.budget, note=best,
                counts={"running": progress.running, "failed": progress.failed, "cached": progress.cache_hits},
                top=[(_metric(f.metric), str(f.steps), compact(f.arch)) for f in progress.top])
