"""Careless input found by probing: each is one line on stderr, a non-zero exit, and nothing stored lost."""
from __future__ import annotations

import sys
import time

import pytest

from einsearch import sample
from einsearch.storage import Store
from einsearch.grammar.tree import MAX_BLOCKS
from einsearch.storage.engine import StoreError, parse_url

TASK = "toy-causal:vocab=64,seq=32"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """One search with two finished evaluations; returns the URL."""
    url = f"sqlite:///{tmp_path_factory.mktemp('bad') / 'einsearch.db'}"
    with Store.open(url) as store:
        store.create_search("alpha", task=TASK, strategy="random", budget=2)
        for i, arch in enumerate(sample(2, seed=1, task=TASK, max_params=100_000)):
            eval_id = store.start_evaluation("alpha", {"arch": arch, "task": TASK, "steps": 10, "seed": 0})
            store.finish_evaluation(eval_id, {"status": "ok", "metric_name": "accuracy", "metric": 0.1 * (i + 1),
                                              "loss": 3.0 - i, "params": 1000})
    return url


def _one_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _unchanged(cli, url, before: str) -> None:
    assert cli("searches", "--db", url, "--json").stdout == before


def test_plot_and_report_to_an_unwritable_path(cli, db):
    before = cli("searches", "--db", db, "--json").stdout
    line = _one_line(cli("plot", "alpha", "-o", "/proc/einsearch-nope.png", "--db", db))
    assert "cannot write '/proc/einsearch-nope.png'" in line
    line = _one_line(cli("report", "alpha", "-o", "/proc/einsearch-nope", "--db", db))
    assert "cannot write" in line and "/proc/einsearch-nope" in line
    _unchanged(cli, db, before)


def test_search_config_that_is_not_utf8(cli, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_bytes(b'budget = 3\nname = "\xff\xfe"\n')
    line = _one_line(cli("search", "--config", str(config), "--executor", "fake",
                         "--db", f"sqlite:///{tmp_path / 'x.db'}"))
    assert "not UTF-8" in line and "bad.toml" in line
    assert not (tmp_path / "x.db").exists()


def test_postgresql_url_without_its_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now fails as if not installed
    with pytest.raises(StoreError, match=r"pip install 'einsearch\[postgres\]'"):
        parse_url("postgresql://user@localhost/einsearch")


def test_postgresql_url_without_its_driver_on_the_cli(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    line = _one_line(cli("leaderboard", "--db", "postgresql://user@localhost/einsearch"))
    assert "driver is not installed" in line and "einsearch[postgres]" in line  # brackets survive rich markup


def test_plain_postgresql_url_uses_psycopg3():
    pytest.importorskip("psycopg")
    assert parse_url("postgresql://user@localhost/x").drivername == "postgresql+psycopg"


def test_leaderboard_unknown_search_and_metric(cli, db):
    line = _one_line(cli("leaderboard", "--search", "nosuch", "--db", db))
    assert "no search named 'nosuch'" in line
    line = _one_line(cli("leaderboard", "--metric", "nosuch", "--db", db))
    assert "no evaluation reports a metric named 'nosuch'" in line and "accuracy" in line
    ranked = cli("leaderboard", "--metric", "loss", "--db", db, "-f", "json")  # a secondary metric is known
    assert ranked.exit_code == 0 and len(ranked.stdout.splitlines()) == 2


def test_leaderboard_filters_that_match_nothing_say_so(cli, db):
    line = _one_line(cli("leaderboard", "--max-params", "10", "--db", db), code=1)
    assert line.startswith("nothing matched") and "--max-params 10" in line


@pytest.mark.parametrize("blocks", ["-1", "0", str(MAX_BLOCKS + 1)])
def test_sample_max_blocks_out_of_range(cli, blocks):
    line = _one_line(cli("sample", "--max-blocks", blocks))
    assert f"--max-blocks must be 1..{MAX_BLOCKS}" in line


@pytest.mark.parametrize("name", ["", "   ", " padded", "tab\there"])
def test_search_bad_name(cli, tmp_path, name):
    url = f"sqlite:///{tmp_path / 'n.db'}"
    line = _one_line(cli("search", "--name", name, "--executor", "fake", "--budget", "1", "--db", url))
    assert "--name" in line
    assert not (tmp_path / "n.db").exists()


def test_db_naming_a_directory(cli, tmp_path):
    for args in (["leaderboard"], ["searches"], ["search", "--executor", "fake", "--budget", "1"]):
        line = _one_line(cli(*args, "--db", f"sqlite:///{tmp_path}"))
        assert "is a directory" in line and str(tmp_path) in line


@pytest.mark.parametrize("arch", [
    "net(64, repeat(99999999999, block(pre:rms, glu())))",
    "net(64, repeat(100000000, block(pre:rms, glu())))",
    "net(64, repeat(200, block(pre:rms, glu()), block(pre:rms, glu()), block(pre:rms, glu()), "
    "block(pre:rms, glu()), block(pre:rms, glu())))",
    "net(9" + "9" * 5000 + ", block(pre:rms, glu()))",
    "net(64, block(pre:rms, compose(linear(1e999999999))))",
    "net(64, block(pre:rms, compose(linear(100))))",
    "net(64, block(pre:rms, compose(shift(99999999999))))",
    "net(64, block(pre:rms, glu(expand=" + "4" * 400 + ")))",
])
@pytest.mark.parametrize("command", ["check", "export"])
def test_huge_numbers_fail_fast_with_one_line(cli, tmp_path, arch, command):
    args = ["check", arch] if command == "check" else ["export", "--arch", arch, "-o", str(tmp_path / "m.py")]
    started = time.process_time()  # CPU time: the wall clock of a busy shared machine says little
    line = _one_line(cli(*args, "--task", "toy-causal"))
    assert time.process_time() - started < 2
    assert "error:" in line
    assert "column" in line or "blocks" in line  # where it is, or how many blocks it would expand to
    assert not (tmp_path / "m.py").exists()


@pytest.mark.parametrize("args, named", [(["--depth", "300"], "--depth must be 1..256, got 300"),
                                         (["--depth", "0"], "--depth must be 1..256, got 0"),
                                         (["--width", "4"], "--width must be 8..8192, got 4")])
def test_baselines_sizes_out_of_range_name_the_option(cli, args, named):
    assert named in _one_line(cli("baselines", "--task", TASK, *args))


@pytest.mark.parametrize("strategy, named", [("evolution:population=1", "population"),
                                             ("evolution:metric_floor=high", "metric_floor"),
                                             ("evolution:metric_floor=auto", "needs a task with a plateau")])
def test_a_bad_strategy_option_is_one_line_and_never_reads_started(cli, tmp_path, strategy, named):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    result = cli("search", "--task", TASK, "--strategy", strategy, "--budget", "2", "--executor", "fake",
                 "--db", url, "--name", "s")
    assert named in _one_line(result)
    assert "started" not in result.output
    assert cli("searches", "--db", url, "--json").stdout.strip() in ("[]", "")
