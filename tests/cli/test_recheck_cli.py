"""`einsearch recheck`: a table (or JSON) of the best architectures on more training seeds; bad input is one
line and exit 2."""
import json

import pytest

from einsearch.search.run import SearchConfig, run_search
from einsearch.storage import Store

TASK = "toy-causal:vocab=64,seq=32"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('recheck') / 'einsearch.db'}"
    with Store.open(url) as store:
        run_search(SearchConfig(name="s", task=TASK, strategy="random", budget=5, steps=40, executor="fake",
                                seed_with="transformer,gla", max_params=200_000), store)
    return url


def test_recheck_prints_each_seed_and_the_mean(cli, db):
    result = cli("recheck", "s", "--db", db, "--seeds", "3", "--top", "2")
    assert result.exit_code == 0, result.output
    assert "seed 0" in result.stdout and "seed 2" in result.stdout and "±" in result.stdout
    rows = [json.loads(line) for line in cli("recheck", "s", "--db", db, "--seeds", "3", "--top", "2",
                                              "--json").stdout.splitlines()]
    assert len(rows) == 2 and all(list(r["runs"]) == ["0", "1", "2"] for r in rows)
    assert rows[0]["mean"] >= rows[1]["mean"]
    assert rows[0]["mean"] == pytest.approx(sum(rows[0]["runs"].values()) / 3)


@pytest.mark.parametrize("args, message", [
    (["nope"], "no search named 'nope'"),
    (["s", "--seeds", "1"], "--seeds must be >= 2"),
    (["s", "--workers", "0"], "--workers must be at least 1"),
    (["s", "--arch", "net(32, block(pre:rms, glu(expand=2, act=swish)))"], "is not among search 's'"),
    (["s", "--arch", "net((("], "recheck --arch: line 1, column 5"),
])
def test_bad_input_is_one_line(cli, db, args, message):
    result = cli("recheck", *args, "--db", db)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
