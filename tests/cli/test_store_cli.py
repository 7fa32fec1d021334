"""leaderboard, searches, show, plot and report on a small database; bad input is one line and exit 2."""
from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import text

from einsearch import sample
from einsearch.storage import Store
from einsearch.storage.engine import make_engine, parse_url
from einsearch.storage.models import VERSION_TABLE

TASK = "toy-causal:vocab=64,seq=32"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """Two searches over six sampled architectures, with lineage; returns (url, archs, eval ids)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'einsearch.db'}"
    archs = sample(6, seed=1, task=TASK, max_params=100_000)
    ids = []
    with Store.open(url) as store:
        store.create_search("alpha", task=TASK, strategy="random", budget=6)
        store.create_search("beta", task=TASK, strategy="evolution")
        for i, arch in enumerate(archs):
            search = "alpha" if i < 4 else "beta"
            parents = [archs[0]] if i == 4 else []
            eval_id = store.start_evaluation(search, {"arch": arch, "task": TASK, "steps": 10 * (i + 1), "seed": 0,
                                                      "parents": parents, "op": "mutate:grow"})
            store.finish_evaluation(eval_id, {"status": "ok", "metric_name": "accuracy", "metric": 0.1 * (i + 1),
                                              "loss": 2.0 - 0.1 * i, "curve": [[s, 0.01 * s * (i + 1)]
                                                                              for s in range(1, 11)],
                                              "params": 1000 * (6 - i), "wall_time_s": 0.5})
            ids.append(eval_id)
        failed = store.start_evaluation("alpha", {"arch": archs[0], "task": TASK, "steps": 5, "seed": 1})
        store.finish_evaluation(failed, {"status": "failed", "error": "loss diverged"})
        store.record_cache_hit("beta", {"arch": archs[1], "task": TASK, "steps": 20, "seed": 0}, ids[1])
    return url, archs, ids


def test_leaderboard_formats_and_filters(cli, db):
    url, archs, ids = db
    rows = [json.loads(line) for line in cli("leaderboard", "--db", url, "--format", "json").stdout.splitlines()]
    assert [r["evaluation"] for r in rows] == ids[::-1]
    assert rows[0]["steps"] == 60 and rows[0]["metric"] == "accuracy"
    result = cli("leaderboard", "--db", url, "--format", "csv", "--search", "alpha", "--top", "2")
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [int(r["evaluation"]) for r in table] == [ids[3], ids[2]]
    small = cli("leaderboard", "--db", url, "--format", "json", "--max-params", "2.5k").stdout.splitlines()
    assert [json.loads(line)["evaluation"] for line in small] == [ids[5], ids[4]]
    op = archs[2].ops()[0]
    used = [json.loads(line) for line in
            cli("leaderboard", "--db", url, "-f", "json", "--uses", op, "--task", "toy-causal").stdout.splitlines()]
    assert ids[2] in {r["evaluation"] for r in used} and all(op in archs[ids.index(r["evaluation"])].ops()
                                                             for r in used)
    shown = cli("leaderboard", "--db", url)
    assert shown.exit_code == 0 and archs[5].hash[:12] in shown.stdout


def test_searches(cli, db):
    url, _, _ = db
    rows = {r["name"]: r for r in map(json.loads, cli("searches", "--db", url, "--json").stdout.splitlines())}
    assert (rows["alpha"]["completed"], rows["alpha"]["failed"], rows["alpha"]["budget"]) == (4, 1, 6)
    assert (rows["beta"]["completed"], rows["beta"]["cache_hits"], rows["beta"]["strategy"]) == (3, 1, "evolution")
    table = cli("searches", "--db", url)
    assert table.exit_code == 0 and "alpha" in table.stdout and "evolution" in table.stdout


def test_show(cli, db):
    url, archs, ids = db
    by_id = cli("show", str(ids[4]), "--db", url)
    assert by_id.exit_code == 0, by_id.output
    assert archs[4].hash in by_id.stdout and "learning curve" in by_id.stdout
    assert f"parent  {archs[0].hash}  by mutate:grow" in by_id.stdout
    by_prefix = cli("show", archs[0].hash[:7], "--db", url, "--json")
    record = json.loads(by_prefix.stdout)
    assert record["hash"] == archs[0].hash and len(record["evaluations"]) == 2
    assert [c["child_hash"] for c in record["children"]] == [archs[4].hash]
    unknown_arch = sample(1, seed=99, task=TASK)[0]
    parsed = cli("show", str(unknown_arch), "--db", url, "--json")
    assert parsed.exit_code == 0 and json.loads(parsed.stdout)["hash"] == unknown_arch.hash


def test_plot_writes_a_png(cli, db, tmp_path):
    url, _, _ = db
    out = tmp_path / "alpha.png"
    result = cli("plot", "alpha", "-o", str(out), "--db", url)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_report(cli, db, tmp_path):
    url, archs, _ = db
    result = cli("report", "beta", "-o", str(tmp_path / "rep"), "--db", url, "--png")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "Plotly.newPlot" in page and archs[5].hash[:12] in page and "evolution" in page
    assert "cdn.plot.ly" not in page.split("</script>", 1)[1]  # the bundle is inline: nothing fetched
    assert (tmp_path / "rep" / "index.png").read_bytes()[:4] == b"\x89PNG"
    compared = cli("report", "alpha", "--compare", "beta", "-o", str(tmp_path / "both.html"), "--db", url)
    assert compared.exit_code == 0, compared.output
    both = (tmp_path / "both.html").read_text()
    assert "einsearch report: alpha, beta" in both and "loss diverged" in both
    assert cli("report", "alpha", "-o", str(tmp_path / "x.txt"), "--db", url).exit_code == 2
    assert cli("report", "nope", "-o", str(tmp_path / "n.html"), "--db", url).exit_code == 2


def test_newer_schema_exit_2(cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'future.db'}"
    Store.open(url).close()
    engine = make_engine(parse_url(url))
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'zz_future'"))
    engine.dispose()
    for args in (["leaderboard"], ["searches"], ["show", "1"]):
        result = cli(*args, "--db", url)
        assert result.exit_code == 2 and "newer than this einsearch" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [
    ["show", "999999"],
    ["show", "e42"],
    ["show", "net(64, nosuch("],
    ["leaderboard", "--format", "xml"],
    ["leaderboard", "--top", "0"],
    ["leaderboard", "--max-params", "lots"],
    ["plot", "nosuch", "-o", "out.png"],
    ["plot", "alpha", "-o", "out.jpg"],
    ["report", "nosuch", "-o", "rep"],
])
def test_bad_input_exit_2_one_line(cli, db, args):
    url, _, _ = db
    before = cli("searches", "--db", url, "--json").stdout
    result = cli(*args, "--db", url)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert cli("searches", "--db", url, "--json").stdout == before  # nothing stored is lost


@pytest.mark.parametrize("url", ["not-a-url", "nosuchdb://host/x", "sqlite:////no/such/dir/x.db"])
def test_bad_database_exit_2_one_line(cli, tmp_path, url):
    result = cli("leaderboard", "--db", url)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    missing = cli("searches", "--db", f"sqlite:///{tmp_path / 'absent.db'}")
    assert missing.exit_code == 2 and "no database" in missing.stderr
    assert not (tmp_path / "absent.db").exists()  # reading never creates a database
