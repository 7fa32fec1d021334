"""The cross-layer context through `einsearch.build`: attention-aware routing reads the previous
attention layer's matrix, decoupled attention reads the stem output, only the matrices that are
read get computed, and whole nets stay causal."""
from __future__ import annotations

import copy

import pytest
import torch

from einsearch import build, parse
from einsearch.tasks import get_task
from einsearch.ops.context import context_plan
from tests.ops.attention.test_checks import heads, linear, ref_masked_softmax_attention, ref_rms, unheads
from tests.ops.channel.test_moe_routing import graph_moe_ref

CAUSAL = get_task("toy-causal:vocab=16,seq=12")
NONCAUSAL = get_task("toy-classify:vocab=16,seq=12")
ATTN_MOE = "net(32, block(pre:rms, attention(heads=2, kv_heads=2)), block(pre:rms, attention_moe(experts=4)))"


@pytest.mark.parametrize("task", [CAUSAL, NONCAUSAL])
def test_attention_moe_routes_with_previous_attention_matrix(task):
    torch.manual_seed(0)
    model = build(parse(ATTN_MOE), task).double().train()
    attn_block, moe_block = model.blocks
    tokens = task.example_input(3)
    x = model.stem(tokens)  # (B, L, D)
    # by hand: the attention's explicit matrix on its (normed) input, then the dense MoE reference
    h1 = attn_block(x)
    matrix = attn_block.layer.attention_weights(attn_block.norm(x))  # (B, H, L, L)
    y_ref, aux_ref = graph_moe_ref(moe_block.layer, moe_block.norm(h1), matrix.mean(1))
    expected = h1 + y_ref
    got = model.backbone(x)
    assert (got - expected).abs().max() <= 1e-10 * expected.abs().max()
    assert (moe_block.layer.aux_loss - aux_ref).abs() <= 1e-12
    plain = moe_block(h1)  # blocks one by one: no context, the plain-router fallback
    assert (got - plain).abs().max() > 1e-6  # the matrix changed the routing
    assert torch.equal(model(tokens), model.head(got))
    assert moe_block.layer.context is None  # cleared after the forward
    copy.deepcopy(model)


def test_embed_qk_reads_the_stem_output():
    torch.manual_seed(0)
    model = build(parse("net(32, block(pre:rms, glu()), block(pre:rms, embed_qk_attention(heads=2, rope=false)))"),
                  CAUSAL).double()
    glu_block, attn_block = model.blocks
    e = model.stem(CAUSAL.example_input(2))
    h1 = glu_block(e)
    op = attn_block.layer
    src = ref_rms(e, op.norm.weight)
    q, k = heads(linear(src, op.q), 2), heads(linear(src, op.k), 2)
    v = heads(linear(attn_block.norm(h1), op.v), 2)
    y = linear(unheads(ref_masked_softmax_attention(q, k, v, lambda i, j: j <= i)), op.out)
    expected = h1 + y
    got = model.backbone(e)
    assert (got - expected).abs().max() <= 1e-10 * expected.abs().max()
    assert (got - attn_block(h1)).abs().max() > 1e-6  # the fallback (q, k from h1) differs


def _spy(module, calls: list):
    original = module.attention_weights

    def spy(x):
        calls.append(module)
        return original(x)

    module.attention_weights = spy


def test_only_the_most_recent_attention_before_a_consumer_is_computed():
    torch.manual_seed(0)
    text = ("net(32, block(pre:rms, attention(heads=2, kv_heads=2)), block(pre:rms, l2_attention(heads=2)), "
            "block(pre:rms, glu()), block(pre:rms, attention_moe(experts=4)), block(pre:rms, position_attention()))")
    model = build(parse(text), CAUSAL)
    layers = [b.layer for b in model.blocks]
    consumers, producers = context_plan(model.blocks)
    assert consumers == [layers[3]] and producers == [layers[1]]
    calls: list = []
    for layer in (layers[0], layers[1], layers[4]):
        _spy(layer, calls)
    model(CAUSAL.example_input(2))
    assert calls == [layers[1]]
    # no consumer of the matrix: no attention_weights call at all
    plain = build(parse("net(32, block(pre:rms, attention(heads=2, kv_heads=2)), block(pre:rms, moe()))"), CAUSAL)
    calls.clear()
    _spy(plain.blocks[0].layer, calls)
    plain(CAUSAL.example_input(2))
    assert calls == []


def test_consumer_before_any_attention_falls_back():
    text = "net(32, block(pre:rms, attention_moe(experts=4)), block(pre:rms, attention(heads=2, kv_heads=2)))"
    model = build(parse(text), CAUSAL).eval()
    consumers, producers = context_plan(model.blocks)
    assert len(consumers) == 1 and producers == []
    x = model.stem(CAUSAL.example_input(2))
    expected = x
    for block in model.blocks:  # no context: the plain router
        expected = block(expected)
    assert torch.equal(model.backbone(x), expected)


CAUSAL_NETS = [
    ATTN_MOE,
    "net(32, block(pre:rms, embed_qk_attention(heads=2)), block(pre:rms, glu()), block(post:ln, embed_qk_attention()))",
    "net(32, block(pre:rms, fixed_mix_attention(heads=2)), block(pre:rms, similarity_moe(experts=4)), "
    "block(pre:rms, attention_moe(experts=4, top_k=1)))",
    "net(32, block(pre:rms, parallel(l2_attention(heads=2), attention_moe(experts=4))), "
    "block(sandwich:rms, position_attention(heads=2)), block(pre:rms, attention_moe(experts=4, shared_expert=true)))",
]


@pytest.mark.parametrize("text", CAUSAL_NETS)
def test_whole_net_causal_gradient(text):
    """Through Net's own backbone (context wired): d out[t] / d x[>t] is exactly zero (float64)."""
    torch.manual_seed(0)
    model = build(parse(text), CAUSAL).double().train()
    for t in (0, 5, 10):
        x = model.stem(CAUSAL.example_input(2)).detach().requires_grad_(True)
        out = model.head(model.backbone(x))
        out[:, t].sum().backward()
        assert torch.count_nonzero(x.grad[:, t + 1:]) == 0, (text, t)
        assert torch.count_nonzero(x.grad[:, : t + 1]) > 0


@pytest.mark.parametrize("text", CAUSAL_NETS)
def test_whole_net_causal_tokens(text):
    """Changing the token at t leaves the logits before t bit-identical (float32, train mode)."""
    torch.manual_seed(0)
    model = build(parse(text), CAUSAL).train()
    tokens = CAUSAL.example_input(2)
    for t in (3, 8):
        changed = tokens.clone()
        changed[:, t] = (changed[:, t] + 7) % 16
        with torch.no_grad():
            y, y2 = copy.deepcopy(model)(tokens), copy.deepcopy(model)(changed)
        assert torch.equal(y[:, :t], y2[:, :t]) and not torch.equal(y[:, t], y2[:, t])
