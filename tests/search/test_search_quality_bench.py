"""bench/quality_front.py: the Pareto front and the issue's aim on made-up points (no training)."""
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from quality_front import Point, best_so_far, check_aim, front, front_table  # noqa: E402


def point(i, metric, state, params, baseline=None):
    return Point(i, f"arch{i}", f"a{i}", metric, state, params, baseline)


TRANSFORMER = point(1, 0.999, 16_384, 115_000, "transformer")
DELTANET = point(2, 0.993, 3_584, 117_000, "deltanet")
GLA = point(3, 0.26, 1_024, 118_000, "gla")


def test_front_drops_dominated_points_and_keeps_trade_offs():
    worse = point(4, 0.99, 4_000, 120_000)  # DeltaNet is better on all three
    small = point(5, 0.80, 576, 130_000)  # least state, more params than GLA: both kept
    points = [TRANSFORMER, DELTANET, GLA, worse, small]
    kept = front(points)
    assert [p.evaluation for p in kept] == [1, 2, 5, 3]  # by accuracy
    assert worse not in kept
    table = front_table(points)
    assert len(table) == 2 + 4 and "| e5 | found | 0.800 | 576 | 130,000 | `a5` |" in table


def test_aim_needs_the_threshold_less_state_than_the_reference_and_no_baseline_dominating():
    near = point(4, 0.989, 1_000, 90_000)  # below 0.99
    bigger = point(5, 0.995, 9_728, 117_000)  # solves it, more state than DeltaNet
    aim = check_aim([TRANSFORMER, DELTANET, GLA, near, bigger])
    assert aim.reference == DELTANET and not aim.smaller and not aim.more_accurate and not aim.met
    perfect = point(7, 1.0, 8_192, 74_000)  # beats the transformer's 0.999, but with more state than DeltaNet
    aim = check_aim([TRANSFORMER, DELTANET, GLA, perfect])
    assert aim.more_accurate == [perfect] and not aim.met  # a baseline reaches 0.99: only less state counts
    winner = point(6, 0.995, 2_048, 125_000)  # more params than DeltaNet but less state: not dominated
    aim = check_aim([TRANSFORMER, DELTANET, GLA, winner])
    assert aim.smaller == [winner] and aim.met


def test_aim_on_a_harder_setting_is_beating_every_baseline():
    bases = [point(1, 0.40, 16_384, 115_000, "transformer"), point(2, 0.55, 3_584, 117_000, "deltanet")]
    dominated = point(3, 0.56, 3_584, 117_000)
    assert check_aim(bases + [dominated]).more_accurate == [dominated]
    tie = point(4, 0.55, 1_000, 100_000)  # not more accurate than DeltaNet
    aim = check_aim(bases + [tie])
    assert aim.reference is None and not aim.met


def test_best_so_far_skips_failures():
    assert best_so_far([None, 0.2, 0.1, None, 0.5]) == [float("-inf"), 0.2, 0.2, 0.2, 0.5]


@pytest.mark.parametrize("train_seeds", [1, 2])
def test_script_smoke_run_writes_its_section_and_plot(tmp_path, train_seeds):
    """bench/search_quality.py on the fake evaluator: its (a) section, front table and PNG; with
    --train-seeds 2 the search's own seeds are 0-1 and the check adds 2-3."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other\nkeep me\n")
    subprocess.run([sys.executable, str(root / "bench" / "search_quality.py"), "pareto", "--smoke", "--budget", "16",
                    "--settings", "mqar:seq=64,pairs=4,vocab=128", "--results", str(results), "--out", str(tmp_path),
                    "--train-seeds", str(train_seeds), "--check-seeds", str(2 * train_seeds + 1)],
                   check=True, capture_output=True)
    text = results.read_text()
    assert "## Other\nkeep me" in text
    assert "## Search quality (a): Pareto front, `mqar:seq=64,pairs=4,vocab=128`" in text
    assert "| e1 |" in text or "| e2 |" in text
    assert "Aim " in text and "Canonical strings of the front:" in text
    verdict = "one training seed" if train_seeds == 1 else "the mean of 2 training seeds"
    assert re.search(rf"\*\*Aim (not )?met\*\* in this run \({verdict}\)\.", text)
    seeds = 2 * train_seeds + 1
    header = "| " + " | ".join(f"seed {s}" for s in range(seeds)) + " | mean |"
    assert "**Seed check** (`einsearch recheck`)" in text and header in text
    assert f"on the mean of {seeds} training seeds." in text
    own = "one training seed (seed 0)" if train_seeds == 1 else "2 training seeds (seeds 0-1)"
    assert f"trains each candidate on {own}" in text and f"trained again on seeds {train_seeds}-{seeds - 1} " in text
    assert (tmp_path / "search_quality_pareto_mqar_seq_64_pairs_4_vocab_128.png").stat().st_size > 1000


def test_combined_timing_sums_searches_and_keeps_first_start_and_last_end():
    from quality_front import combined

    one = ("Sun Dec 06 22:55 UTC 2026; load average (1, 5, 15 min) 0.35 2.26 2.55 at the start and 1.9 2.0 2.4 at the "
           "end; 3.2 min wall")
    two = ("Sun Dec 06 22:59 UTC 2026; load average (1, 5, 15 min) 1.9 2.0 2.4 at the start and 2.5 2.1 2.2 at the "
           "end; 3.5 min wall")
    text = combined([one, two])
    assert text.startswith("Sun Dec 06 22:55 UTC 2026; load average (1, 5, 15 min) 0.35 2.26 2.55 at the start and "
                           "2.5 2.1 2.2 at the end; 2 searches, 6.7 min wall in all")
    assert "not recorded" in combined([one, "a stored run (its time and load not recorded)"])


def test_seed_range_names_one_seed_alone():
    from quality_seeds import seed_range

    assert seed_range(2, 2) == "seed 2"  # the check after --train-seeds 2 --check-seeds 3 adds one seed
    assert seed_range(1, 2) == "seeds 1-2"


def test_seed_check_picks_the_aims_finds_first_then_the_best_baselines_and_the_reference():
    from quality_seeds import picked

    winner = point(6, 0.995, 2_048, 125_000)
    runner_up = point(7, 0.97, 1_000, 60_000)
    dominated = point(8, 0.98, 20_000, 200_000)  # the transformer beats it on all three
    points = [TRANSFORMER, DELTANET, GLA, winner, runner_up, dominated]
    aim = check_aim(points)
    assert picked(points, aim, 1) == [winner, TRANSFORMER, DELTANET]  # DeltaNet: the aim's reference
    assert picked(points, aim, 2) == [winner, runner_up, TRANSFORMER, DELTANET]


def test_seed_check_judges_the_aim_on_the_mean_and_leaves_out_failed_points():
    from quality_seeds import check_lines, seed_points

    lucky = point(6, 0.995, 2_048, 125_000)
    runs = {lucky.arch: {0: 0.995, 1: 0.12, 2: 0.80},  # a one-seed win: mean 0.638
            DELTANET.arch: {0: 0.993, 1: 0.95, 2: 0.97},
            TRANSFORMER.arch: {0: 0.999, 1: None, 2: 0.99}}  # a failed run: left out
    means = seed_points([lucky, DELTANET, TRANSFORMER], runs, 3)
    assert [p.evaluation for p in means] == [6, 2]
    assert abs(means[0].metric - (0.995 + 0.12 + 0.80) / 3) < 1e-9 and means[0].state == lucky.state
    lines = check_lines([lucky, DELTANET, TRANSFORMER], runs, 3, 0.99)
    assert "| e6 | found | 0.995 | 0.120 | 0.800 | 0.638 | 2,048 | 125,000 |" in lines
    assert "| e1 | transformer | 0.999 | failed | 0.990 | - | 16,384 | 115,000 |" in lines
    assert lines[-1] == "**Aim not met** on the mean of 3 training seeds."
    steady = {**runs, lucky.arch: {0: 0.995, 1: 0.99, 2: 0.998}}  # beats DeltaNet's mean (0.971) on every seed
    assert check_lines([lucky, DELTANET], steady, 3, 0.99)[-1] == "**Aim met** on the mean of 3 training seeds."


def test_strategies_smoke_run_and_a_partial_section(tmp_path):
    """(c) on the fake evaluator: every strategy on every seed; a run cut short says how far it got."""
    import argparse
    import subprocess

    root = Path(__file__).resolve().parents[2]
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n")
    subprocess.run([sys.executable, str(root / "bench" / "search_quality.py"), "strategies", "--smoke", "--budget", "6",
                    "--seeds", "2", "--strategies", "random,pcfg-learn:refit_every=2", "--task", "toy-causal",
                    "--results", str(results), "--out", str(tmp_path)], check=True, capture_output=True)
    text = results.read_text()
    assert "| random | 6, 6 |" in text and "| pcfg-learn:refit_every=2 | 6, 6 |" in text and "Partial" not in text
    assert (tmp_path / "search_quality_curves_toy_causal.png").stat().st_size > 1000

    from quality_strategies import c_section

    args = argparse.Namespace(task="toy-causal", budget=3, time_limit=None, steps=2, max_params=1000, seeds=2,
                              strategies=["random", "tpe"], executor="fake", workers=1, threshold=0.35)
    cut = c_section(args, {"random": [[0.1, 0.2, 0.2], [0.3, 0.3, 0.4]], "tpe": [[0.2, None, 0.5]]},
                    {"random": 0, "tpe": 1}, [], tmp_path / "partial.md")
    assert "**Partial: 3 of 4 searches finished**" in cut
    # best @ 3 (every search reached 3), at the end, the evaluation where each search first reached 0.35,
    # how many of each search's candidates reached it
    assert "| random | 3, 3 | 0.300 ± 0.141 | 0.300 ± 0.141 | -, 3 | 0, 1 | 0 |" in cut
    assert "| tpe | 3 | 0.500 ± 0.000 | 0.500 ± 0.000 | 3 | 1 | 1 |" in cut  # a failure keeps the best


def test_first_reaching_and_compare():
    from quality_front import compare, first_reaching

    assert first_reaching([0.1, 0.99, 1.0], 0.99) == 2 and first_reaching([0.1, 0.5], 0.99) is None
    assert compare(1.000, 0.999) == "matches" and compare(0.99, 0.9) == "beats" and compare(0.9, 0.99) == "does not beat"


def test_a_run_left_by_a_killed_search_is_not_counted(tmp_path):
    """The bench reads a resumed search without the runs a kill interrupted (the resume trained them again)."""
    from quality_run import finished

    from einsearch import sample
    from einsearch.search.loop import INTERRUPTED
    from einsearch.storage.store import Store

    task = "toy-causal:vocab=64,seq=32"
    first, second = sample(2, seed=1, task=task, max_params=100_000)
    with Store.open(f"sqlite:///{tmp_path / 'killed.db'}") as store:
        store.create_search("s", task=task, strategy="random", budget=2)
        store.start_evaluation("s", {"arch": first, "task": task, "steps": 10, "seed": 0})
        store.abandon_running("s", reason=INTERRUPTED)
        for arch in (first, second):
            done = store.start_evaluation("s", {"arch": arch, "task": task, "steps": 10, "seed": 0})
            store.finish_evaluation(done, {"status": "ok", "metric_name": "accuracy", "metric": 0.5})
        assert [r.status for r in finished(store, "s")] == ["ok", "ok"] and len(store.evaluations("s")) == 3
