"""The search headline: best found architecture against the best baseline, from a tiny store filled by a
search on the fake executor, through the library, the `search` command and the HTML report."""
from __future__ import annotations

import pytest

from einsearch.grammar import check, parse
from einsearch.grammar.compact import compact
from einsearch.report.data import baseline_name
from einsearch.report.page import write_html_report
from einsearch.report.summary import Entry, headline, search_headline
from einsearch.search.run import SearchConfig, run_search, seeds
from einsearch.storage.store import Store
from einsearch.tasks import get_task

TASK = "toy-causal:vocab=16,seq=16"
SEEDED = "transformer,baseconv,deltanet"


@pytest.fixture
def store(tmp_path):
    config = SearchConfig(name="s", task=TASK, strategy="evolution:population=3,sample_size=2", budget=8, steps=5,
                          executor="fake", seed_with=SEEDED, max_params=60_000)
    with Store.open(f"sqlite:///{tmp_path / 'tiny.db'}") as opened:
        run_search(config, opened)
        yield opened


def test_best_found_and_best_baseline_of_a_search(store):
    task = get_task(TASK)
    seeded = {str(arch) for arch in seeds(SearchConfig(name="s", task=TASK, seed_with=SEEDED, max_params=60_000),
                                          task)}
    records = [r for r in store.evaluations("s") if r.status == "ok"]
    assert len(records) == 8 and seeded <= {r.arch for r in records}
    found = [r for r in records if baseline_name(r.arch) is None]
    assert len(found) >= 3  # the fake evaluator scores every candidate; evolution proposed new ones

    result = search_headline(store, "s")
    assert result.n_baselines == 3 and result.n_found == len({r.arch for r in found})
    best_base = max((r for r in records if r.arch in seeded), key=lambda r: r.metric)
    best_found = max(found, key=lambda r: r.metric)
    for entry, record in ((result.baseline, best_base), (result.found, best_found)):
        arch = parse(record.arch)
        assert (entry.evaluation, entry.arch, entry.metric, entry.params) == (record.id, record.arch, record.metric,
                                                                                record.params)
        assert entry.state_size == check(arch, task).state_size and entry.compact == compact(arch)
    assert result.baseline.baseline in SEEDED.split(",") and result.found.baseline is None

    lines = result.lines()
    assert len(lines) == 3
    assert lines[0].startswith("best found") and f"{best_found.metric:.3f}" in lines[0]
    assert f"e{best_found.id}" in lines[0] and f"{best_found.params:,}" in lines[0]
    assert lines[1].startswith("best baseline") and f"{result.baseline.baseline}: " in lines[1]
    assert f"state {result.baseline.state_size:,}" in lines[1]
    delta = best_found.metric - best_base.metric
    assert f"accuracy {delta:+.3f}" in lines[2]
    word = "matches" if abs(delta) <= 0.005 * best_base.metric else "beats" if delta > 0 else "falls short of"
    assert word in lines[2]
    assert f"({result.found.state_size / result.baseline.state_size:.2f}x)" in lines[2]


def _entry(evaluation: int, metric: float, steps: int = 100, state: int = 10, params: int = 5,
           baseline: str | None = None) -> Entry:
    return Entry(evaluation, f"a{evaluation}", f"c{evaluation}", metric, steps, params, state, baseline)


def test_highest_fidelity_first_then_metric_then_smaller_state_and_params():
    entries = [_entry(1, 0.99, steps=50), _entry(2, 0.9), _entry(3, 0.95, state=30), _entry(4, 0.95, state=20),
               _entry(5, 0.95, state=20, params=3), _entry(6, 0.5, baseline="transformer"),
               _entry(7, 0.8, baseline="deltanet")]
    result = headline(entries, "s", "accuracy")
    assert result.found.evaluation == 5  # 0.99 was at 50 steps only; ties go to less state, then fewer params
    assert result.baseline.evaluation == 7 and result.baseline.baseline == "deltanet"
    assert "the search beats the best baseline" in result.verdict() and "accuracy +0.150" in result.verdict()
    close = headline([_entry(1, 1.0), _entry(2, 0.999, baseline="transformer")], "s", "accuracy")
    assert "the search matches the best baseline on accuracy" in close.verdict()  # +0.001: within one seed
    assert "falls short of" in headline([_entry(1, 0.98), _entry(2, 0.999, baseline="t")], "s", "accuracy").verdict()
    lower = headline(entries, "s", "loss", higher_is_better=False)
    assert lower.found.evaluation == 2 and lower.baseline.evaluation == 6


def test_a_side_without_results_is_said_not_invented():
    result = headline([_entry(1, 0.5, baseline="mamba")], "s", "accuracy")
    assert result.found is None and result.baseline.evaluation == 1
    assert result.lines()[0] == "best found     no new architecture finished" and len(result.lines()) == 2
    assert headline([], "s").lines()[1] == "best baseline  no baseline finished"


def test_search_command_and_report_print_the_headline(tmp_path, cli):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    result = cli("search", "--task", TASK, "--strategy", "evolution:population=3", "--budget", "5", "--steps", "5",
                 "--executor", "fake", "--seed-with", "transformer,baseconv", "--max-params", "60k", "--name", "c",
                 "--db", db)
    assert result.exit_code == 0, result.output
    with Store.open(db, create=False) as store:
        expected = search_headline(store, "c").lines()
        html = write_html_report(store, ["c"], tmp_path / "r.html").read_text()
    shown = [line.rstrip() for line in result.stdout.splitlines()]
    assert all(line in shown for line in expected), result.stdout
    assert "best found" in expected[0] and "best baseline" in expected[1]
    assert "`einsearch recheck c` trains the best on more seeds" in result.stdout
    assert 'class="facts headline"' in html and "best baseline" in html
