"""Graph-of-tokens MoE routing: a dense reference with explicit loops over tokens and experts,
the plain-router fallback, causality."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from einsearch.ops import create
from einsearch.ops.context import Context
from tests.ops.channel.test_moe import rel_err, swiglu_ref

DIM = 16


def softmax_rows(logits: torch.Tensor) -> torch.Tensor:
    e = torch.exp(logits - logits.max(-1, keepdim=True).values)
    return e / e.sum(-1, keepdim=True)


def similarity_graph_ref(moe, x: torch.Tensor) -> torch.Tensor:
    """S (B, L, L): row i is the softmax over allowed j of (W_s x_i) . x_j / sqrt(D)."""
    batch, length, dim = x.shape
    graph = torch.zeros(batch, length, length, dtype=x.dtype)
    for b in range(batch):
        for i in range(length):
            keys = [j for j in range(length) if j <= i or not moe.causal]
            query = moe.similarity.weight @ x[b, i]
            logits = torch.stack([(query * x[b, j]).sum() / math.sqrt(dim) for j in keys])
            graph[b, i, keys] = softmax_rows(logits)
    return graph


def graph_moe_ref(moe, x: torch.Tensor, graph: torch.Tensor | None):
    """Smoothed router probabilities token by token, top-k, every expert on every token. -> (y, aux)."""
    batch, length, dim = x.shape
    probs = softmax_rows(x @ moe.router.weight.T)  # (B, L, E)
    if graph is not None:
        smoothed = torch.zeros_like(probs)
        for b in range(batch):
            for i in range(length):
                for j in range(length):
                    smoothed[b, i] = smoothed[b, i] + graph[b, i, j] * probs[b, j]
        probs = smoothed
    tokens, probs = x.reshape(-1, dim), probs.reshape(-1, moe.experts)
    chosen = probs.detach().argsort(-1, descending=True)[:, : moe.top_k]
    picked = probs.gather(-1, chosen)
    gates = picked / picked.sum(-1, keepdim=True) if moe.top_k > 1 else picked
    y = torch.zeros_like(tokens)
    for expert in range(moe.experts):
        weight = (gates * (chosen == expert)).sum(-1)
        y = y + weight[:, None] * swiglu_ref(tokens, moe.w1[expert], moe.w3[expert], moe.w2[expert])
    if moe.shared is not None:
        s = moe.shared
        y = y + swiglu_ref(tokens, s.w1.weight.T, s.w3.weight.T, s.w2.weight.T)
    share = torch.stack([(chosen == e).sum() for e in range(moe.experts)]).to(x.dtype) / chosen.numel()
    aux = 0.01 * moe.experts * (share * probs.mean(0)).sum()
    return y.view(batch, length, dim), aux


def random_attention(batch: int, n_heads: int, length: int, causal: bool) -> torch.Tensor:
    logits = torch.randn(batch, n_heads, length, length, dtype=torch.float64)
    if causal:
        logits = logits.masked_fill(torch.ones(length, length, dtype=torch.bool).triu(1), float("-inf"))
    return logits.softmax(-1)


def check_against(moe, x, graph, context=None):
    params = list(moe.parameters())
    moe.context = context
    y = moe(x)
    y_ref, aux_ref = graph_moe_ref(moe, x, graph)
    assert rel_err(y, y_ref) < 1e-8
    assert rel_err(moe.aux_loss, aux_ref) < 1e-8
    weight = torch.randn_like(y)
    loss, loss_ref = (y * weight).sum() + moe.aux_loss, (y_ref * weight).sum() + aux_ref
    for g, g_ref in zip(torch.autograd.grad(loss, [x, *params]), torch.autograd.grad(loss_ref, [x, *params])):
        assert rel_err(g, g_ref) < 1e-8


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("experts,top_k,shared", [(4, 1, False), (8, 2, True), (4, 2, False)])
def test_similarity_moe_matches_dense_reference(causal, experts, top_k, shared):
    torch.manual_seed(experts + top_k)
    moe = create("similarity_moe", DIM, causal=causal, experts=experts, top_k=top_k, shared_expert=shared,
                 expand=1).double().train()
    for batch, length in [(1, 1), (2, 9), (2, 40)]:  # 2 * 40 * k slots span several row blocks
        x = torch.randn(batch, length, DIM, dtype=torch.float64, requires_grad=True)
        check_against(moe, x, similarity_graph_ref(moe, x))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("experts,top_k,n_heads", [(4, 1, 1), (8, 2, 4)])
def test_attention_moe_matches_dense_reference(causal, experts, top_k, n_heads):
    torch.manual_seed(experts + top_k)
    moe = create("attention_moe", DIM, causal=causal, experts=experts, top_k=top_k, expand=1).double().train()
    for batch, length in [(1, 1), (2, 9), (2, 40)]:
        x = torch.randn(batch, length, DIM, dtype=torch.float64, requires_grad=True)
        attention = random_attention(batch, n_heads, length, causal)
        check_against(moe, x, attention.mean(1), Context(attention=attention))


def test_attention_moe_without_matrix_routes_like_plain_moe():
    """The fallback: no attention matrix in the context (or no context) -> the softmax `moe`."""
    torch.manual_seed(0)
    routed = create("attention_moe", DIM, causal=True, experts=4, top_k=2).train()
    plain = create("moe", DIM, causal=True, experts=4, top_k=2, router="softmax").train()
    plain.load_state_dict(routed.state_dict())
    x = torch.randn(2, 19, DIM)
    expected = plain(x)
    for context in (None, Context(embedding=x)):
        routed.context = context
        assert torch.equal(routed(x), expected)
        assert torch.equal(routed.aux_loss, plain.aux_loss)


def test_attention_moe_uses_the_matrix():
    """A matrix that copies token 0's probabilities to every row routes all tokens like token 0."""
    torch.manual_seed(0)
    moe = create("attention_moe", DIM, causal=True, experts=8, top_k=2).double().eval()
    x = torch.randn(1, 12, DIM, dtype=torch.float64)
    attention = torch.zeros(1, 2, 12, 12, dtype=torch.float64)
    attention[..., 0] = 1.0  # causal: every row may read position 0
    moe.context = Context(attention=attention)
    gates, chosen = moe.route_batch(x)
    assert (chosen == chosen[:1]).all() and torch.allclose(gates, gates[:1].expand_as(gates))


def test_causal_mode_masks_a_noncausal_matrix():
    """Even a matrix with weight on later tokens cannot leak them into a causal router."""
    torch.manual_seed(0)
    moe = create("attention_moe", DIM, causal=True, experts=4, top_k=1).double().eval()
    x = torch.randn(1, 10, DIM, dtype=torch.float64)
    moe.context = Context(attention=random_attention(1, 2, 10, causal=False))
    y = moe(x)
    x2 = x.clone()
    x2[:, 5:] += 3 * torch.randn(1, 5, DIM, dtype=torch.float64)
    assert torch.equal(moe(x2)[:, :5], y[:, :5])


@pytest.mark.parametrize("name", ["similarity_moe", "attention_moe"])
def test_causality_bit_exact(name):
    """Perturbing position t (input and, for attention_moe, the attention layer's input) leaves
    outputs before t bit-identical (float32, train mode)."""
    torch.manual_seed(0)
    moe = create(name, 32, causal=True, experts=8, top_k=2).train()
    attn = create("attention", 32, causal=True, heads=2, kv_heads=2)
    x = torch.randn(2, 45, 32)
    for t in (0, 13, 44):
        x2 = x.clone()
        x2[:, t] += 5 * torch.randn(32)
        outs = []
        for inp in (x, x2):
            copy_ = copy.deepcopy(moe)
            copy_.context = Context(attention=attn.attention_weights(inp).detach())
            with torch.no_grad():
                outs.append(copy_(inp))
        y, y2 = outs
        assert torch.equal(y[:, :t], y2[:, :t])
        assert not torch.equal(y[:, t], y2[:, t])


def test_matrix_shape_is_checked():
    moe = create("attention_moe", DIM, causal=True)
    moe.context = Context(attention=torch.ones(2, 1, 5, 5) / 5)
    with pytest.raises(ValueError, match="does not fit"):
        moe(torch.randn(2, 6, DIM))


@pytest.mark.parametrize("name", ["moe", "similarity_moe", "attention_moe"])
def test_active_params_are_what_a_token_uses(name):
    """The FLOPs hook: with top_k = experts every weight is used (built directly, outside the
    registry's choices), so it equals the parameter count; the registered choices use fewer."""
    from einsearch.ops import count_params, get_op

    spec = get_op(name)
    for experts, shared, expand in [(2, False, 1), (3, True, 2)]:
        module = spec.cls(DIM, causal=True, experts=experts, top_k=experts, shared_expert=shared, expand=expand)
        hp = {"experts": experts, "top_k": experts, "shared_expert": shared, "expand": expand}
        assert spec.active_params(DIM, hp) == sum(p.numel() for p in module.parameters())
    for top_k in (1, 2):
        hp = spec.resolve({"top_k": top_k})
        assert 0 < spec.active_params(DIM, hp) < count_params(name, DIM, True, hp)
