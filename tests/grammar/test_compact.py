"""The compact notation: complete (nothing cut), injective on canonical strings, registry-free."""
import itertools
import random

import pytest

from einsearch import parse, sample
from einsearch.tasks import get_task
from einsearch.grammar.compact import KEY_SHORT, compact, compact_text, op_name
from einsearch.grammar.mutate import change_hparam
from einsearch.grammar.tree import Arch, Node
from einsearch.ops import list_ops
from einsearch.search.library import templates

TASKS = ("toy-causal", "toy-classify")  # causal and not: the non-causal one admits permute and more ops


def _op_nodes(arch: Arch) -> list[Node]:
    return [n for n in arch.root.walk() if n.kind == "op"]


def _assert_complete(arch: Arch) -> str:
    """Nothing cut: no ellipsis, every primitive with every hyperparameter appears, the width leads."""
    text = compact(arch)
    assert "…" not in text and "..." not in text
    assert "\n" not in text
    assert text.startswith(f"{arch.dim}·")
    for node in _op_nodes(arch):
        piece = compact(Node("net", (arch.dim,), (Node("block", ("pre", "rms"), (node,)),)))
        assert piece.removeprefix(f"{arch.dim}·") in text, (piece, text)
    return text


@pytest.fixture(scope="module")
def sampled() -> list[Arch]:
    archs = []
    for seed, task in enumerate(TASKS):
        archs += sample(500, seed=seed, task=task)
    return archs


def test_every_baseline_renders_completely_and_distinctly():
    rendered = {}
    for template in templates():
        for dim, depth in ((64, 2), (128, 4)):
            arch = template.render(dim, depth)
            text = _assert_complete(arch)
            assert rendered.setdefault(text, str(arch)) == str(arch), f"{template.name} collides"
    assert len(rendered) == 2 * len(templates())
    transformer = [t for t in templates() if t.name == "transformer"][0].render(64, 2)
    assert compact(transformer) == "64·2×[attn(h4,kv4,rope) | glu(e4,swish)]"


def test_thousand_sampled_render_completely_and_injectively(sampled):
    assert len(sampled) == 1000
    by_text: dict[str, str] = {}
    for arch in sampled:
        text = _assert_complete(arch)
        assert by_text.setdefault(text, str(arch)) == str(arch), f"{text} stands for two architectures"
    assert len(by_text) == len({str(a) for a in sampled})


def test_near_neighbours_render_distinctly(sampled):
    """Hyperparameter mutations differ from their parent in one value: the compact forms must too."""
    rng = random.Random(0)
    task = get_task("toy-causal")
    checked = 0
    for arch in sampled[:200]:
        child = change_hparam(arch, task, rng)
        if child is not None and child != arch:
            assert compact(child) != compact(arch), str(child)
            checked += 1
    assert checked > 50


def test_every_hyperparameter_setting_of_every_primitive_is_distinct():
    for spec in list_ops():
        name = spec.name
        keys = list(spec.hparams)
        shorts = [KEY_SHORT.get(k, k) for k in keys]
        assert len(set(shorts)) == len(shorts), f"{name}: two keys share a short form"
        seen = set()
        for values in itertools.product(*(spec.hparams[k] for k in keys)):
            node = Node("op", (name, tuple(zip(keys, values))))
            seen.add(compact(Node("net", (64,), (Node("block", ("pre", "rms"), (node,)),))))
        assert len(seen) == max(1, len(list(itertools.product(*spec.hparams.values())))), name
    names = [op_name(spec.name) for spec in list_ops()]
    assert len(set(names)) == len(names)


def test_commutative_orders_share_a_graph_hash_but_not_a_rendering():
    """'Distinct' means distinct canonical strings: compact is as faithful as the identity, so two
    notations of one graph (commutative branches swapped) still read differently, like their hashes."""
    a = parse("net(32, block(pre:rms, parallel(attention(), mamba())))")
    b = parse("net(32, block(pre:rms, parallel(mamba(), attention())))")
    assert a.graph_hash == b.graph_hash and a.hash != b.hash
    assert compact(a) != compact(b)
    assert compact(a) == "32·(attn(h4,kv4,rope) ∥ mamba(n16,e2,c8))"


@pytest.mark.parametrize("text, expected", [
    ("net(16, block(none, compose(seq(seq(linear(2), act(gelu)), linear(0.5)))))", "16·nonorm:{(lin2→gelu)→lin0.5}"),
    ("net(16, block(none, compose(seq(linear(2), seq(act(gelu), linear(0.5))))))", "16·nonorm:{lin2→(gelu→lin0.5)}"),
    ("net(16, block(post:ln, compose(branch(mul, seq(linear(1), act(silu)), id))))", "16·post-ln:{(lin1→silu * id)}"),
    ("net(16, block(sandwich:rms, compose(split(cat, conv(3), shift(1)))))", "16·sandwich:{split++(conv3, shift1)}"),
    ("net(16, block(pre:rms, compose(attend(softmax, linear(1), linear(1), norm(rms)))))",
     "16·{attend.softmax(lin1, lin1, rms)}"),
    ("net(16, block(pre:rms, parallel(sum, attention(heads=2, rope=false), glu())))",
     "16·(attn(h2,kv4) + glu(e4,swish))"),
])
def test_composed_forms(text, expected):
    assert compact(parse(text)) == expected


def test_compact_text_falls_back_to_the_string():
    assert compact_text("net(8, block(pre:rms, no_such_mixer()))") == "net(8, block(pre:rms, no_such_mixer()))"
    assert compact_text("net(8, block(pre:rms, glu()))") == "8·glu(e4,swish)"
