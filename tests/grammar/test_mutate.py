import random

import pytest

from einsearch import check, parse, sample
from einsearch.tasks import get_task
from einsearch.grammar.mutate import change_depth, change_hparam, crossover, resample, subtrees
from einsearch.grammar.sampler import Limits

TASK = get_task("toy-causal")
LIMITS = Limits(max_params=150_000, max_blocks=6)


@pytest.fixture(scope="module")
def population():
    return sample(80, seed=11, task=TASK, max_params=LIMITS.max_params, max_blocks=LIMITS.max_blocks)


def _valid(arch):
    assert parse(str(arch)) == arch
    report = check(arch, TASK)
    assert report.params <= LIMITS.max_params and report.blocks <= LIMITS.max_blocks


def test_subtrees_are_typed_and_addressable(population):
    for arch in population[:20]:
        subs = subtrees(arch, TASK, LIMITS)
        assert subs and all(s.path for s in subs)
        kinds = {s.slot.kind for s in subs}
        assert "stage" in kinds and "layer" in kinds


def test_resample_every_subtree_stays_valid(population):
    rng = random.Random(0)
    for arch in population:
        for sub in subtrees(arch, TASK, LIMITS):
            _valid(resample(arch, TASK, rng, LIMITS, sub))


def test_resample_changes_something(population):
    rng = random.Random(1)
    changed = sum(resample(a, TASK, rng, LIMITS) != a for a in population)
    assert changed > len(population) // 2


def _mutated(population, mutation, seed):
    """(parent, child) for each architecture the mutation changed (None: nothing fit), each child valid."""
    rng = random.Random(seed)
    pairs = [(arch, mutation(arch, TASK, rng, LIMITS)) for arch in population]
    pairs = [(arch, child) for arch, child in pairs if child is not None]
    for arch, child in pairs:
        _valid(child)
        assert child != arch and child.dim == arch.dim
    return pairs


def test_change_hparam(population):
    pairs = _mutated(population, change_hparam, seed=2)
    for arch, child in pairs:
        diff = [(x, y) for x, y in zip(arch.root.walk(), child.root.walk()) if x != y and not x.children]
        assert len(diff) == 1 and diff[0][0].kind == "op"
    assert pairs


def test_change_depth_keeps_the_layers_and_moves_one_repeat_or_stage(population):
    pairs = _mutated(population, change_depth, seed=3)
    layers = lambda a: {str(n) for n in a.root.walk() if n.kind == "block"}
    for arch, child in pairs:
        assert check(arch, TASK).blocks != check(child, TASK).blocks
        assert layers(child) <= layers(arch)  # nothing new: only copies or stages come and go
    assert len(pairs) > len(population) // 2


def test_change_depth_reaches_one_layer_of_a_two_layer_baseline():
    G = "block(pre:rms, glu(expand=4, act=swish))"
    arch = parse(f"net(64, repeat(2, block(pre:rms, deltanet(heads=4, chunk=16)), {G}))")
    children = {change_depth(arch, TASK, random.Random(seed), LIMITS) for seed in range(20)}
    one = parse(f"net(64, block(pre:rms, deltanet(heads=4, chunk=16)), {G})")  # unrolled: a canonical one-copy form
    assert one in children and str(one) in {str(c) for c in children}
    assert change_depth(parse("net(64, block(pre:rms, glu()))"), TASK, random.Random(0), Limits(max_blocks=1)) is None


def test_crossover(population):
    rng = random.Random(3)
    made = 0
    for a, b in zip(population, population[1:]):
        child = crossover(a, b, TASK, rng, LIMITS)
        if child is not None:
            made += 1
            _valid(child)
    assert made > 0


def test_mixed_depth_mod_slots_respect_types():
    arch = parse("net(64, block(pre:rms, compose(seq(linear(2), act(gelu), linear(1)))))")
    slots = {s.path: s.slot for s in subtrees(arch, TASK, LIMITS)}
    assert slots[(0, 0, 0, 0)].w_out == 2 and slots[(0, 0, 0, 1)].w_in == 2


def test_change_hparam_never_changes_a_compute_only_hyperparameter():
    """A chunk size changes speed, not the function: a child differing only there would train to the same
    figures and spend an evaluation (e45 of the mqar-cpu search was e27 with chunk=32)."""
    glu = "block(pre:rms, glu(expand=4, act=swish))"
    arch = parse(f"net(64, repeat(2, block(pre:rms, deltanet(heads=4, chunk=64)), {glu}))")
    children = [change_hparam(arch, TASK, random.Random(seed), LIMITS) for seed in range(40)]
    assert all(c is not None for c in children)
    assert {str(c) for c in children} - {str(arch)}  # heads and the GLU still change
    assert all("chunk=64" in str(c) and "chunk=16" not in str(c) and "chunk=32" not in str(c) for c in children)
    only_chunk = parse("net(64, block(pre:rms, deltanet(heads=4, chunk=64)))")
    assert all("chunk=64" in str(c) for seed in range(20)
               if (c := change_hparam(only_chunk, TASK, random.Random(seed), LIMITS)) is not None)
