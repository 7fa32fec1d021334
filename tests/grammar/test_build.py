import pytest
import torch

from einsearch import build, check, parse
from einsearch.tasks import get_task
import importlib

check_module = importlib.import_module("einsearch.grammar.checker")

TASK = get_task("toy-causal:seq=16")
LAYERS = "compose(seq(linear(2), act(gelu), linear(1)))"


def _net(place: str, blocks: int = 4) -> str:
    return f"net(32, repeat({blocks}, block({place}:ln, {LAYERS})))"


def _outputs(text: str, x: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(0)
    return build(text, TASK)(x)


@pytest.mark.parametrize("share, same_as", [(0.0, "pre"), (1.0, "post")])
def test_mixln_share_limits(monkeypatch, share, same_as):
    monkeypatch.setattr(check_module, "MIX_LN_SHARE", share)
    x = TASK.example_input(2)
    assert torch.equal(_outputs(_net("mixln"), x), _outputs(_net(same_as), x))


def test_mixln_default_is_post_then_pre():
    model = build(_net("mixln", blocks=8), TASK)
    assert [b.place for b in model.blocks] == ["post"] * 2 + ["pre"] * 6


def test_block_placements():
    x = torch.randn(2, 16, 32)
    for place in ("pre", "post", "sandwich", "none"):
        text = f"net(32, block({'none' if place == 'none' else place + ':rms'}, {LAYERS}))"
        block = build(text, TASK).blocks[0]
        f = block.layer
        expected = {"pre": lambda: x + f(block.norm(x)), "post": lambda: block.norm(x + f(x)),
                    "sandwich": lambda: x + block.norm_out(f(block.norm(x))), "none": lambda: x + f(x)}[place]()
        assert torch.allclose(block(x), expected)


def test_repeat_gives_separate_weights():
    model = build(_net("pre", blocks=3), TASK)
    assert len(model.blocks) == 3
    w = [b.layer.mods[0].weight for b in model.blocks]
    assert w[0] is not w[1] and check(_net("pre", blocks=3), TASK).depth == 3


def test_type_errors_name_the_subexpression():
    from einsearch import ArchError

    with pytest.raises(ArchError, match=r"in branch\(add, linear\(2\), id\): add needs equal widths"):
        check(parse("net(32, block(pre:rms, compose(branch(add, linear(2), id))))"), TASK)
    with pytest.raises(ArchError, match="permute mixes all positions"):
        check(parse("net(32, block(pre:rms, compose(permute(id))))"), TASK)
    with pytest.raises(ArchError, match="not a whole number"):
        check(parse("net(32, block(pre:rms, compose(seq(linear(0.01), linear(1)))))"), TASK)


def test_attend_matches_explicit_masked_softmax():
    text = "net(32, block(none, compose(attend(softmax, linear(0.5), linear(0.5), id))))"
    attend = build(text, TASK).blocks[0].layer
    x = torch.randn(2, 16, 32, dtype=torch.float64)
    attend.double()
    q, k = attend.q(x), attend.k(x)
    scores = q @ k.transpose(1, 2) / 4.0
    scores = scores.masked_fill(torch.ones(16, 16).triu(1).bool(), float("-inf"))
    assert torch.allclose(attend(x), scores.softmax(-1) @ x)


def test_parallel_block_with_a_zero_ffn_equals_the_attention_only_block():
    """parallel(sum, ...) is the parallel block: attention and FFN on the same normalised input, summed."""
    torch.manual_seed(0)
    attention = "attention(heads=2, kv_heads=2, rope=true)"
    parallel = build(parse(f"net(32, block(pre:rms, parallel(sum, {attention}, glu())))"), "toy-causal")
    alone = build(parse(f"net(32, block(pre:rms, {attention}))"), "toy-causal")
    with torch.no_grad():
        for p in parallel.blocks[0].layer.layers[1].parameters():  # the FFN branch outputs zeros
            p.zero_()
    state = {k.replace("layer.layers.0.", "layer."): v for k, v in parallel.state_dict().items()
             if "layers.1." not in k}
    alone.load_state_dict(state)
    tokens = torch.randint(0, 32, (2, 16))
    torch.testing.assert_close(parallel(tokens), alone(tokens))
    mean = build(parse(f"net(32, block(pre:rms, parallel({attention}, glu())))"), "toy-causal")
    assert mean.blocks[0].layer.scale == 0.5
