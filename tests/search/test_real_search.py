"""Real searches end to end (real training on a tiny MQAR), and search configuration files."""
import json

from einsearch.storage.store import Store

TASK = "mqar-tiny"


def test_evolution_with_baselines_and_tpe_train_store_and_rank(tmp_path, cli):
    db = f"sqlite:///{tmp_path / 'real.db'}"
    common = ("--task", TASK, "--steps", "15", "--max-params", "60k", "--executor", "local", "--db", db)
    result = cli("search", "--strategy", "evolution:population=3", "--budget", "4", "--keep-weights", "2",
                 "--seed-with", "transformer,mamba", "--name", "evo", *common)
    assert result.exit_code == 0, result.output
    result = cli("search", "--strategy", "tpe", "--budget", "3", "--name", "tpe", *common)
    assert result.exit_code == 0, result.output
    with Store.open(db) as store:
        for name, budget in (("evo", 4), ("tpe", 3)):
            records = store.evaluations(name)
            assert len(records) == budget and all(r.status == "ok" for r in records), records
            assert all(r.steps == 15 and 0 <= r.metric <= 1 and r.params <= 60_000 for r in records)
            assert store.get_search(name).status == "finished"
        assert "attention(" in store.evaluations("evo")[0].arch  # the seeded transformer went first
        kept = [r for r in store.evaluations("evo") if r.weights_path is not None]
        top = [row.evaluation.id for row in store.leaderboard(search="evo", top=2)]
        assert sorted(r.id for r in kept) == sorted(top)  # --keep-weights 2: exactly the top two
        state = store.load_weights(top[0])
        assert state and all(hasattr(v, "shape") for v in state.values())
    exported = cli("export", "--best", "evo", "--weights", "-o", str(tmp_path / "best.py"), "--db", db)
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "best.safetensors").exists()
    board = cli("leaderboard", "--task", TASK, "--format", "json", "--db", db)
    assert board.exit_code == 0, board.output
    rows = [json.loads(line) for line in board.stdout.splitlines() if line.strip()]
    assert len(rows) >= 4 and {row["search"] for row in rows} >= {"evo", "tpe"}


def test_config_file_gives_the_options_and_the_command_line_wins(tmp_path, cli):
    db = f"sqlite:///{tmp_path / 'cfg.db'}"
    config = tmp_path / "search.toml"
    config.write_text('[search]\ntask = "toy-causal"\nstrategy = "random"\nbudget = 5\nexecutor = "fake"\n'
                      'max-params = "200k"\nname = "from-file"\ntime-limit = "10m"\n')
    result = cli("search", "--config", str(config), "--budget", "3", "--db", db)
    assert result.exit_code == 0, result.output
    with Store.open(db) as store:
        record = store.get_search("from-file")
        assert record.strategy == "random" and record.budget == 3
        assert record.config["max_params"] == 200_000 and record.config["time_limit_s"] == 600
        assert len(store.evaluations("from-file")) == 3


def test_bad_config_files_fail_with_one_line(tmp_path, cli):
    cases = {"budget = 0\n": "budget: must be >= 1", "bugdet = 3\n": "unknown key 'bugdet'",
             "budget = 'many'\n": "budget: expected int", "budget = \n": "not valid TOML",
             "time-limit = 'soon'\n": "not a duration"}
    for text, message in cases.items():
        config = tmp_path / "bad.toml"
        config.write_text(text)
        result = cli("search", "--config", str(config), "--executor", "fake", "--db", f"sqlite:///{tmp_path / 'b.db'}")
        assert result.exit_code == 2, (text, result.output)
        assert message in result.output and "Traceback" not in result.output, (text, result.output)
    missing = cli("search", "--config", str(tmp_path / "nope.toml"))
    assert missing.exit_code == 2 and "nope.toml" in missing.output
