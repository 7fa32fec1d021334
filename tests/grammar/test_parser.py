import random

import pytest

from einsearch import ArchError, parse
from einsearch.grammar.tree import Arch

GOOD = [
    "net(64, block(pre:rms, compose(seq(linear(2), act(gelu), linear(1)))))",
    "net(32, repeat(2, block(none, compose(id)), block(sandwich:ln, compose(shift(1)))))",
    "net(64, block(post:rms, compose(attend(softmax, linear(0.5), linear(0.5), id))))",
    "net(64, block(mixln:ln, compose(split(cat, conv(3), norm(rms)))))",
    "net(64, block(pre:rms, compose(branch(mul, act(silu), linear(1)))))",
    "net(48, block(pre:rms, compose(permute(seq(linear(2), act(gelu), linear(1))))))",
]


@pytest.mark.parametrize("text", GOOD)
def test_round_trip(text):
    arch = parse(text)
    assert str(arch) == text
    assert parse(str(arch)) == arch
    assert arch.hash == parse(text).hash


def test_whitespace_and_defaults_are_notation_only():
    a = parse("net( 64 ,block(pre:rms,compose( id )) )")
    assert str(a) == "net(64, block(pre:rms, compose(id)))"


def test_widths_print_canonically():
    assert str(parse("net(64, block(pre:rms, compose(seq(linear(2.0), linear(1.00)))))")) == \
        "net(64, block(pre:rms, compose(seq(linear(2), linear(1)))))"


def test_stable_hash():
    # Pinned: a change to the canonical form or the hash breaks every stored database.
    arch = parse("net(64, block(pre:rms, compose(id)))")
    assert arch.hash == "90003db2a78d8949"


def test_graph_hash_ignores_commutative_order_only():
    a = parse("net(64, block(pre:rms, compose(branch(add, act(gelu), conv(3)))))")
    b = parse("net(64, block(pre:rms, compose(branch(add, conv(3), act(gelu)))))")
    c = parse("net(64, block(pre:rms, compose(seq(act(gelu), conv(3)))))")
    d = parse("net(64, block(pre:rms, compose(seq(conv(3), act(gelu)))))")
    assert a.hash != b.hash and a.graph_hash == b.graph_hash
    assert c.graph_hash != d.graph_hash


@pytest.mark.parametrize("text, where", [
    ("net(64", "end of input"),
    ("net(64, block(pre:rms, nosuchop()))", "line 1, column 24: unknown primitive 'nosuchop'"),
    ("net(64,\n  block(pre:foo, compose(id)))", "line 2, column 13"),
    ("net(64, block(pre:rms, compose(linear(0))))", "width must be positive"),
    ("", "end of input"),
])
def test_errors_name_position(text, where):
    with pytest.raises(ArchError) as info:
        parse(text)
    assert where in str(info.value)
    assert "\n" not in str(info.value)


ALPHABET = "net(),:=.0123456789 abcdefghijklmnopqrstuvwxyz_-+*\n"


def _mutations(text: str, rng: random.Random, n: int):
    for _ in range(n):
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            pos = rng.randrange(len(chars) + 1)
            if op < 0.4 and chars:
                del chars[min(pos, len(chars) - 1)]
            elif op < 0.8:
                chars.insert(pos, rng.choice(ALPHABET))
            else:
                chars[min(pos, len(chars) - 1)] = rng.choice(ALPHABET)
        yield "".join(chars)


def test_fuzz_only_arch_errors():
    rng = random.Random(0)
    texts = [("".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 40)))) for _ in range(300)]
    for good in GOOD:
        texts.extend(_mutations(good, rng, 150))
    texts += ["(" * 5000 + ")" * 5000, "net(" * 3000, "x" * 300_000]
    parsed = 0
    for text in texts:
        try:
            arch = parse(text)
        except ArchError as err:
            assert "\n" not in str(err)
            continue
        parsed += 1
        assert isinstance(arch, Arch) and parse(str(arch)) == arch
    assert parsed < len(texts)
