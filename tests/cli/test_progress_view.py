"""Live progress: a rich panel on a terminal, plain log lines (no control characters) elsewhere."""
import io
import re
import subprocess
import sys

from rich.console import Console

from einsearch.cli.progress_view import ProgressView, plain, search_update
from einsearch.grammar import parse
from einsearch.grammar.compact import compact
from einsearch.search.loop import TOP_K, Finished, Progress
from einsearch.tasks import get_task

ARCHS = [parse(text) for text in (
    "net(64, block(pre:rms, attention(heads=4)), block(pre:rms, glu()))",
    "net(64, repeat(2, block(pre:rms, mamba()), block(pre:rms, mlp())))",
    "net(32, block(pre:rms, mlp(expand=4, act=relu)))",
    "net(64, repeat(4, block(pre:ln, mlp(expand=2, act=relu))))",
    "net(128, block(sandwich:rms, retnet(heads=4, chunk=32)), block(pre:ln, short_conv(kernel=3)))",
    "net(64, block(pre:ln, halo_attention(heads=4, block=8, rope=true)))",
    "net(64, block(pre:rms, gla()), block(pre:rms, glu()))",
)]
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def finished(i, metric, steps=100, status="ok", error=None, cached=False):
    return Finished(ARCHS[i], steps, status, metric if status == "ok" else None, "acc", cached, error,
                    metric if status == "ok" else None)


def progress_with_seven():
    progress = Progress(budget=10)
    for i, metric in enumerate([0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.6]):
        progress.done += 1
        progress.note(finished(i, metric))
    progress.done += 1
    progress.failed += 1
    progress.note(finished(0, None, status="failed", error="out of memory: tried 9 GiB\nsecond line"))
    progress.running, progress.best = 2, 0.9
    return progress


def test_progress_keeps_the_best_five_distinct_highest_fidelity_first():
    progress = progress_with_seven()
    assert [f.score for f in progress.top] == [0.9, 0.8, 0.7, 0.6, 0.5] and len(progress.top) == TOP_K
    progress.note(finished(1, 0.2, steps=400))  # a higher fidelity ranks first and replaces its lower one
    assert progress.top[0].steps == 400 and [f.arch.hash for f in progress.top].count(ARCHS[1].hash) == 1
    progress.note(finished(1, 0.1, steps=100))  # a worse result of a kept architecture changes nothing
    assert progress.top[0].score == 0.2 and len(progress.top) == TOP_K


def test_plain_output_is_one_clean_line_per_finished_evaluation():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=80)
    progress = progress_with_seven()
    with ProgressView("search demo", total=10, console=console) as view:
        assert not view.live
        search_update(view, progress)
    text = out.getvalue()
    lines = text.splitlines()
    assert len(lines) == 8  # every finished evaluation, nothing else (no panel redraws)
    assert not CONTROL.search(text.replace("\n", ""))
    assert lines[1].startswith("search demo: 2/10 ok acc=0.9 steps=100 ") and compact(ARCHS[1]) in lines[1]
    assert lines[-1].startswith("search demo: 8/10 failed (out of memory: tried 9 GiB)")
    assert all(compact(ARCHS[i]) in line for i, line in enumerate(lines[:7]))  # never cut at the width


def test_terminal_panel_shows_counts_and_the_top_five_in_compact_notation():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    progress = progress_with_seven()
    with ProgressView("search demo", total=10, console=console) as view:
        assert view.live
        search_update(view, progress)
    text = out.getvalue()
    assert "running 2" in text and "failed 1" in text and "8/10" in text and "eta" in text
    for i in (1, 5, 3, 6, 0):  # the top five
        assert compact(ARCHS[i]) in text
    assert compact(ARCHS[2]) in text  # scrolled above the panel as a log line, not in the table
    panel = view.render()
    rendered = Console(file=io.StringIO(), width=200, color_system=None)
    rendered.print(panel)
    table_text = rendered.file.getvalue()
    assert [compact(ARCHS[i]) in table_text for i in (1, 5, 3, 6, 0, 2, 4)] == [True] * 5 + [False] * 2


def test_plain_strips_escape_sequences_and_newlines():
    assert plain("a\x1b[31mred\x1b[0m\nb\r") == "a[31mred[0m b"


def test_cli_search_logs_plain_lines_when_not_a_terminal(tmp_path):
    task = get_task("toy-causal")
    command = [sys.executable, "-m", "einsearch.cli", "search", "--task", task.spec, "--strategy", "random",
               "--budget", "4", "--workers", "2", "--executor", "fake", "--max-params", "200k", "--name", "p",
               "--db", f"sqlite:///{tmp_path / 'p.db'}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stderr and "\r" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if re.match(r"search p: \d+/4 ", line)]
    assert [line.split()[2] for line in lines] == ["1/4", "2/4", "3/4", "4/4"], done.stderr
    assert all("·" in line for line in lines)  # the compact notation
