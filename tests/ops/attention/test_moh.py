import copy

import pytest
import torch

from einsearch.ops import aux_loss, create
from tests.ops.attention.test_checks import (
    assert_causal, assert_matches_reference, assert_step_matches_forward, causal_or_full, heads, linear,
    ref_masked_softmax_attention, ref_rope, ref_softmax, rel_err, unheads,
)

DIM = 16


def ref_gates(module, x):
    """Token by token: shared softmax, routed top-k renormalised, groups 2 softmax. -> (B, L, H)."""
    rows = []
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            xt = x[b, t]
            shared = ref_softmax(linear(xt, module.route_shared))
            probs = ref_softmax(linear(xt, module.route_routed))
            top = sorted(range(len(probs)), key=lambda i: -probs[i].item())[:module.topk]
            total = sum(probs[i] for i in top)
            routed = torch.stack([probs[i] / total if i in top else probs[i] * 0 for i in range(len(probs))])
            groups = 2 * ref_softmax(linear(xt, module.route_groups))
            rows.append(torch.cat([groups[0] * shared, groups[1] * routed]))
    return torch.stack(rows).view(x.shape[0], x.shape[1], -1)


def ref_attention(module, x):
    """Per-head outputs (B, H, L, d) by explicit masked softmax."""
    p = module.qkv
    q, k, v = heads(linear(x, p.q), p.heads), heads(linear(x, p.k), p.heads), heads(linear(x, p.v), p.heads)
    if p.rope:
        q, k = ref_rope(q), ref_rope(k)
    return ref_masked_softmax_attention(q, k, v, causal_or_full(module.causal))


def reference(module, x):
    gates = ref_gates(module, x).permute(0, 2, 1)[..., None]  # (B, H, L, 1)
    return linear(unheads(ref_attention(module, x) * gates), module.out)


CASES = [(4, 1, 2, True), (8, 2, 4, False), (4, 2, 1, True)]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_heads,shared,topk,rope", CASES)
def test_matches_reference(causal, n_heads, shared, topk, rope):
    torch.manual_seed(0)
    module = create("moh_attention", DIM, causal=causal, heads=n_heads, shared=shared, topk=topk, rope=rope)
    assert_matches_reference(module, reference, DIM)


def test_unit_gates_equal_multi_head_attention():
    """The identity: with every head weight 1 (same attend() path as forward), MoH == attention."""
    torch.manual_seed(0)
    moh = create("moh_attention", DIM, causal=True, heads=4, shared=1, topk=2).double()
    mha = create("attention", DIM, causal=True, heads=4, kv_heads=4, rope=True).double()
    missing = moh.load_state_dict(mha.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["route_groups.weight", "route_routed.weight", "route_shared.weight"]
    x = torch.randn(2, 9, DIM, dtype=torch.float64)
    assert rel_err(moh.attend(x, torch.ones(2, 9, 4, dtype=torch.float64)), mha(x)) < 1e-12
    assert rel_err(moh(x), mha(x)) > 1e-3  # the learned gates do change the output


def test_balance_loss():
    torch.manual_seed(0)
    module = create("moh_attention", DIM, causal=True, heads=4, shared=1, topk=2).double()
    x = torch.randn(2, 7, DIM, dtype=torch.float64)
    module.train()
    module(x)
    probs = ref_softmax(linear(x, module.route_routed)).reshape(-1, 3)
    chosen = torch.zeros_like(probs)
    for n, row in enumerate(probs):
        for i in sorted(range(3), key=lambda i: -row[i].item())[:2]:
            chosen[n, i] = 1.0
    expected = 0.01 * (chosen.mean(0) * probs.mean(0)).sum()
    assert rel_err(aux_loss(module), expected) < 1e-12
    assert copy.deepcopy(module).aux_loss is None  # a copy drops the last forward's graph
    module.eval()
    module(x)
    assert module.aux_loss is None


@pytest.mark.parametrize("n_heads,shared,topk,rope", CASES)
def test_causal_and_step(n_heads, shared, topk, rope):
    torch.manual_seed(0)
    module = create("moh_attention", DIM, causal=True, heads=n_heads, shared=shared, topk=topk, rope=rope)
    assert_causal(module, DIM)
    assert_step_matches_forward(module, DIM)


def test_attention_weights_reproduce_forward():
    torch.manual_seed(0)
    length = 10
    for causal in (True, False):
        op = create("moh_attention", 32, causal=causal, heads=4, shared=1, topk=2).double().eval()
        x = torch.randn(2, length, 32, dtype=torch.float64)
        w = op.attention_weights(x)  # (B, H, L, L)
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, length, dtype=torch.float64))
        if causal:
            assert (w.triu(1) == 0).all()
        _, _, v = op.qkv(x)
        heads = (w @ v) * op.gates(x).transpose(1, 2)[..., None]  # (B, H, L, d) weighted per token
        y = op.out(heads.transpose(1, 2).reshape(2, length, 32))
        torch.testing.assert_close(y, op(x))
