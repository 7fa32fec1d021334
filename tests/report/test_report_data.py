"""What the report and the tables compute: facts of an architecture, baselines recognised, rank
correlation between fidelities, shared primitives; and the compact notation in the CLI tables."""
from __future__ import annotations

import json

import pytest

from einsearch import check, parse, sample
from einsearch.report.facts import arch_facts, families
from einsearch.report.data import Point, baseline_name, fidelity_pairs, shared_primitives, spearman
from einsearch.search.library import templates
from einsearch.storage import Store

TASK = "toy-causal:vocab=64,seq=32"


def test_facts_match_check_and_never_raise():
    arch = parse("net(32, block(pre:rms, parallel(attention(heads=2, kv_heads=2), mamba())), "
                 "block(pre:ln, compose(act(gelu))))")
    report = check(arch, TASK)
    facts = arch_facts(str(arch), TASK)
    assert (facts.params, facts.state_size, facts.flops_per_token) == (report.params, report.state_size,
                                                                       report.flops_per_token)
    assert facts.state_size > 0 and facts.families == ("attn", "ssm", "composed")
    assert facts.compact == "32·(attn(h2,kv2,rope) ∥ mamba(n16,e2,c8)) | ln:{gelu}"
    unknown = arch_facts("net(8, block(pre:rms, no_such_mixer()))", TASK)
    assert unknown.compact == "net(8, block(pre:rms, no_such_mixer()))" and unknown.params is None
    assert arch_facts(str(arch), "no-such-task").params is None and families(str(arch))


def test_baselines_are_recognised_at_any_size():
    for template in templates():
        assert baseline_name(str(template.render(64, 3))) == template.name
    assert baseline_name(str(sample(1, seed=0, task=TASK)[0])) is None


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / 22.5 ** 0.5)  # ties share ranks (as scipy)
    assert spearman([1, 2], [1, 2]) is None and spearman([1, 1, 1], [1, 2, 3]) is None


def _point(arch_hash: str, steps: int, metric: float, ops=("glu",), families=("ffn",)) -> Point:
    return Point("s", 1, arch_hash, f"net({arch_hash})", arch_hash, metric, steps, 1, 0, 1, families, ops, None,
                 1, ())


def test_fidelity_pairs_need_three_shared_architectures():
    points = [_point(h, s, m) for h, (a, b) in zip("abcd", [(1, 2), (2, 1), (3, 4), (4, 3)])
              for s, m in ((10, a), (40, b))]
    (pair,) = fidelity_pairs(points)
    assert (pair["low"], pair["high"], len(pair["x"])) == (10, 40, 4) and pair["rho"] == pytest.approx(0.6)
    assert fidelity_pairs(points[:4]) == []  # two architectures at both fidelities: not enough


def test_shared_primitives_rank_what_the_top_share():
    top = [_point("a", 1, 1, ("attention", "glu"), ("attn", "ffn")), _point("b", 1, 1, ("attention",), ("attn",))]
    rest = top + [_point("c", 1, 0, ("mamba",), ("ssm",))] * 2
    rows = shared_primitives(top, rest)
    assert rows[0][:2] in (("attention", 1.0), ("[attn]", 1.0)) and rows[0][2] == pytest.approx(0.5)
    assert "mamba" not in {r[0] for r in rows}


def test_tables_show_compact_notation_and_researcher_columns(cli, tmp_path, monkeypatch):
    from einsearch.cli.common import console

    url = f"sqlite:///{tmp_path / 'einsearch.db'}"
    transformer = [t for t in templates() if t.name == "transformer"][0].render(32, 2)
    with Store.open(url) as store:
        store.create_search("one", task=TASK, strategy="random", budget=2)
        ev = store.start_evaluation("one", {"arch": transformer, "task": TASK, "steps": 5, "seed": 0})
        store.finish_evaluation(ev, {"status": "ok", "metric_name": "accuracy", "metric": 0.5, "params": 1234})
    rows = [json.loads(line) for line in cli("leaderboard", "--db", url, "-f", "json").stdout.splitlines()]
    expected = "32·2×[attn(h2,kv2,rope) | glu(e4,swish)]"
    assert rows[0]["compact"] == expected and rows[0]["arch"] == str(transformer)
    assert rows[0]["state_size"] == check(transformer, TASK).state_size and rows[0]["families"] == ["attn", "ffn"]
    # the console's width is fixed here: COLUMNS is read once, when the console is made (at import)
    monkeypatch.setattr(console, "width", 200)
    table = cli("leaderboard", "--db", url).stdout
    assert expected in table and "attn+ffn" in table
    monkeypatch.setattr(console, "width", 80)
    narrow = cli("leaderboard", "--db", url).stdout
    assert "…" not in narrow and "attn(h2,kv2,rope)" in narrow
    searches = cli("searches", "--db", url).stdout
    assert expected in searches and "0.5" in searches


def test_names_from_the_database_cannot_break_out_of_the_page(tmp_path):
    """A search name is data someone else may write: in the HTML it is escaped, in the plots' JSON too."""
    from einsearch.report import write_html_report
    from einsearch.search.run import SearchConfig, run_search
    from einsearch.storage import Store

    name = "s</script><script>alert(1)</script>"
    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as store:
        run_search(SearchConfig(name=name, task="toy-causal", strategy="random", budget=3, steps=10,
                                executor="fake"), store)
        page = write_html_report(store, [name], tmp_path / "r.html", top=3).read_text()
    assert "<script>alert(1)</script>" not in page and "</script><script>alert" not in page
