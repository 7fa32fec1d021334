"""pcfg-learn: weights move toward the choices of the best architectures, and round-trip as TOML."""
import pytest

from einsearch import parse
from einsearch.errors import UsageError
from einsearch.grammar.sampler import load_weights
from einsearch.search.registry import make_strategy
from einsearch.search.strategies.pcfg_learn import choice_counts, read_weights, reestimate, weights_to_toml
from einsearch.search.types import Result
from einsearch.tasks import get_task

GLA = parse("net(128, block(pre:rms, gla(heads=4, chunk=64)), block(pre:rms, glu(expand=4, act=swish)))")


def test_choice_counts_follow_the_derivation():
    counts = choice_counts(GLA)
    assert counts["net.dim"] == {"128": 1}
    assert counts["stages"] == {"more": 1, "end": 1}
    assert counts["layer"] == {"token_mixer": 1, "channel_mixer": 1}
    assert counts["token_mixer.category"] == {"recurrent": 1}
    assert counts["PLACEMENT"] == {"pre": 2} and counts["NORMKIND"] == {"rms": 2}


def test_reestimate_moves_toward_the_top_architectures_and_keeps_every_weight_positive():
    prior = load_weights()
    learned = reestimate(prior, [GLA] * 5, rate=0.5, smoothing=1.0)

    def share(weights, table, alt):
        return weights[table][alt] / sum(weights[table].values())

    assert share(learned, "net.dim", "128") > share(prior, "net.dim", "128")
    assert share(learned, "token_mixer.category", "recurrent") > share(prior, "token_mixer.category", "recurrent")
    assert all(w > 0 for alts in learned.values() for w in alts.values())
    assert learned["SCORE"] == pytest.approx({k: v / sum(prior["SCORE"].values()) for k, v in prior["SCORE"].items()})


def test_learned_weights_round_trip_through_toml(tmp_path):
    learned = reestimate(load_weights(), [GLA], rate=0.3, smoothing=1.0)
    path = tmp_path / "w.toml"
    path.write_text(weights_to_toml(learned))
    loaded = read_weights(path)
    for table, alts in learned.items():
        assert loaded[table] == pytest.approx(alts, rel=1e-5)
    path.write_text('["nonsense"]\n"a" = 1\n')
    with pytest.raises(ValueError, match="unknown choice point 'nonsense'"):
        read_weights(path)


def test_weights_from_before_chunk_sizes_left_search_still_load(tmp_path):
    """Files learned when a scan's chunk size was a choice point keep working; that table is dropped."""
    path = tmp_path / "old.toml"
    path.write_text('["op.deltanet.chunk"]\n"16" = 0.2\n"32" = 0.3\n"64" = 0.5\n\n["op.deltanet.heads"]\n"8" = 2\n')
    loaded = read_weights(path)
    assert "op.deltanet.chunk" not in loaded and loaded["op.deltanet.heads"]["8"] == 2.0
    path.write_text('["op.deltanet.bogus"]\n"1" = 1\n')
    with pytest.raises(ValueError, match="unknown choice point 'op.deltanet.bogus'"):
        read_weights(path)


def test_metric_floor_fits_only_on_candidates_that_reach_it():
    """On a plateau (MQAR with 4 pairs: 0.25) nothing is fitted on and the weights stay the prior's; once a
    candidate reaches the floor (auto: 0.5), the refit follows it alone, not the plateau's noise."""
    task = get_task("mqar:seq=64,pairs=4,vocab=128")
    floored = make_strategy("pcfg-learn:refit_every=4,metric_floor=auto", task, steps=50, seed=0)
    plain = make_strategy("pcfg-learn:refit_every=4", task, steps=50, seed=0)
    assert floored.metric_floor == pytest.approx(0.5) and floored.warning is None
    prior = {table: dict(alts) for table, alts in floored.weights.items()}

    def tell(strategy, candidate, metric):
        strategy.tell(candidate, Result(status="ok", metric_name="accuracy", metric=metric))

    for strategy in (floored, plain):
        for _ in range(4):
            tell(strategy, strategy.ask(), 0.25)
    assert floored.weights == prior and plain.weights != prior
    learner = floored.ask()
    tell(floored, learner, 0.95)
    for _ in range(3):
        tell(floored, floored.ask(), 0.26)
    assert floored.weights == reestimate(prior, [learner.arch], floored.rate, floored.smoothing)


def test_metric_floor_errors_and_warning_name_pcfg_learn():
    low = make_strategy("pcfg-learn:metric_floor=0.2", get_task("mqar:seq=64,pairs=4,vocab=128"), steps=50)
    assert "plateau (0.25): candidates that learned nothing will still be fitted on" in low.warning
    with pytest.raises(UsageError, match="pcfg-learn: metric_floor=auto needs a task with a plateau"):
        make_strategy("pcfg-learn:metric_floor=auto", get_task("icl-regression"), steps=50)
    with pytest.raises(UsageError, match="pcfg-learn: metric_floor must be a number or auto"):
        make_strategy("pcfg-learn:metric_floor=high", get_task("mqar-cpu"), steps=50)
