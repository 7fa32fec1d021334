import random
from fractions import Fraction

import pytest
import torch

from einsearch import Arch, ArchError, build, check, parse, sample
from einsearch.tasks import get_task
from einsearch.grammar.parser import grammar_parser
from einsearch.grammar.sampler import Limits, Sampler, load_weights
from einsearch.ops import get_op, list_ops


@pytest.fixture(scope="module")
def causal_samples():
    return sample(10_000, seed=0, task="toy-causal")


def test_ten_thousand_samples_round_trip_and_check(causal_samples):
    task = get_task("toy-causal")
    for arch in causal_samples:
        assert parse(str(arch)) == arch
        report = check(arch, task)
        assert report.causal and 1 <= report.depth <= 8


def test_two_hundred_build_and_train_a_step(causal_samples):
    rng = random.Random(1)
    task = get_task("toy-causal")
    torch.manual_seed(0)
    for arch in rng.sample(causal_samples, 200):
        model = build(arch, task)
        assert sum(p.numel() for p in model.parameters()) == check(arch, task).params, str(arch)
        out = model(task.example_input(2))
        assert out.shape == task.output_shape(2), str(arch)
        out.float().pow(2).mean().backward()


def test_noncausal_task_samples_build():
    task = get_task("toy-classify")
    archs = sample(300, seed=3, task=task)
    for arch in archs[:60]:
        model = build(arch, task)
        assert model(task.example_input(3)).shape == (3, 4)
        assert sum(p.numel() for p in model.parameters()) == check(arch, task).params


def test_seeded_sampling_is_reproducible():
    a = [str(x) for x in sample(50, seed=7, task="toy-causal")]
    b = [str(x) for x in sample(50, seed=7, task="toy-causal")]
    c = [str(x) for x in sample(50, seed=8, task="toy-causal")]
    assert a == b and a != c


@pytest.mark.parametrize("budget", [30_000, 100_000, 1_000_000])
def test_parameter_budget_is_respected(budget):
    task = get_task("toy-causal")
    archs = sample(300, seed=budget, task=task, max_params=budget, max_blocks=4)
    for arch in archs:
        report = check(arch, task)
        assert report.params <= budget and report.blocks <= 4


def test_budget_below_stem_is_a_clear_error():
    with pytest.raises(ArchError, match="max_params"):
        sample(1, seed=0, task="toy-causal", max_params=100)


def test_causal_task_never_gets_noncausal_pieces(causal_samples):
    noncausal_ops = {s.name for s in list_ops() if not s.causal}
    for arch in causal_samples:
        kinds = {n.kind for n in arch.root.walk()}
        assert "permute" not in kinds
        assert not noncausal_ops & set(arch.ops())


def test_weights_match_the_grammar():
    """Every weight table names alternatives the .lark grammar has, and vice versa."""
    weights = load_weights()
    rules: dict[str, set[str]] = {}
    for rule in grammar_parser().rules:
        origin = rule.origin.name.lstrip("_?")
        alias = rule.alias or (rule.expansion[0].name if len(rule.expansion) == 1 else None)
        if alias:
            rules.setdefault(origin, set()).add(str(alias))
    assert set(weights["norm"]) == rules["norm"]
    assert set(weights["mod"]) == rules["mod"]
    assert set(weights["stage"]) == rules["stage"]
    assert {"op_call", "parallel", "compose"} == rules["layer"]
    terminals = {t.name: t.pattern.value for t in grammar_parser().terminals}
    for name in ("PLACEMENT", "NORMKIND", "AGG", "SCORE", "ACT"):
        for word in weights[name]:
            assert word in terminals[name], (name, word)
    # TOML reads a bare 0.5 as a dotted key: widths must stay whole keys.
    assert {Fraction(k) for k in weights["mod.width"]} == {Fraction(1, 4), Fraction(1, 2), 1, 2, 4}
    assert not [name for name in weights if name.startswith("mod.width.")]
    for name in ("token_mixer.category", "channel_mixer.category"):
        assert all(w > 0 for w in weights[name].values())


def test_expected_mod_branching_is_subcritical():
    w = load_weights()["mod"]
    total = sum(w.values())
    children = {"seq": 2, "branch": 2, "split": 2, "attend": 3, "permute": 1}
    assert sum(w[k] * n for k, n in children.items()) / total < 1


def test_sampling_under_tight_limits_stays_within_them():
    task = get_task("toy-classify")
    limits = Limits(max_params=20_000, max_blocks=1, max_mod_depth=1)
    sampler = Sampler(task, limits)
    rng = random.Random(0)
    archs = [Arch(sampler.net(rng)) for _ in range(200)]
    for arch in archs:
        report = check(arch, task)
        assert report.params <= limits.max_params, str(arch)
        assert report.blocks <= limits.max_blocks, str(arch)
        assert _mod_depth(arch.root) <= limits.max_mod_depth, str(arch)
    assert len({a.hash for a in archs}) > 20  # tight, yet still a space to search


def _mod_depth(node) -> int:
    """Most composite operations (seq, branch, split, attend, permute) nested on one path: what
    `max_mod_depth` bounds (leaves such as linear or act add none)."""
    here = node.kind in ("seq", "branch", "split", "attend", "permute")
    return here + max((_mod_depth(c) for c in node.children), default=0)


def test_compute_only_hyperparameters_are_no_choice_point(causal_samples):
    """The sampler gives a chunk size its default: draws never differ only in how they compute."""
    weights = load_weights()
    drawn = 0
    for spec in list_ops():
        for key in spec.compute_only:
            assert f"op.{spec.name}.{key}" not in weights
    for arch in causal_samples:
        for node in arch.root.walk():
            if node.kind == "op":
                spec = get_op(node.args[0])
                for key, value in node.args[1]:
                    if key in spec.compute_only:
                        drawn += 1
                        assert value == spec.defaults[key], (str(arch), key)
    assert drawn > 100  # the samples do contain chunked scans
