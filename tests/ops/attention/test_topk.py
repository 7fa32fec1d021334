import math

import pytest
import torch

from einsearch.ops import create
from einsearch.ops.attention.topk import TopKAttention
from tests.ops.attention.test_checks import (
    assert_causal, assert_matches_reference, assert_step_matches_forward, heads, linear, ref_rope,
    rel_err, unheads,
)

DIM = 16


def reference(module, x):
    """Per batch, head and row: sort the visible logits, softmax over the first k, mix those values."""
    p = module.qkv
    q, k, v = heads(linear(x, p.q), p.heads), heads(linear(x, p.k), p.heads), heads(linear(x, p.v), p.heads)
    if p.rope:
        q, k = ref_rope(q), ref_rope(k)
    batch, n_heads, length, d = q.shape
    out = []
    for b in range(batch):
        per_head = []
        for h in range(n_heads):
            rows = []
            for i in range(length):
                visible = range(i + 1) if module.causal else range(length)
                logits = {j: (q[b, h, i] * k[b, h, j]).sum() / math.sqrt(d) for j in visible}
                chosen = sorted(logits, key=lambda j: -logits[j].item())[:module.topk]
                m = max(logits[j] for j in chosen)
                weights = [torch.exp(logits[j] - m) for j in chosen]
                total = sum(weights)
                rows.append(sum(w / total * v[b, h, j] for w, j in zip(weights, chosen)))
            per_head.append(torch.stack(rows))
        out.append(torch.stack(per_head))
    return linear(unheads(torch.stack(out)), module.out)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("topk,n_heads,rope", [(3, 2, True), (1, 1, False), (5, 4, True)])
def test_matches_plain_topk(causal, topk, n_heads, rope):
    torch.manual_seed(0)
    module = TopKAttention(DIM, causal=causal, heads=n_heads, topk=topk, rope=rope)
    assert_matches_reference(module, reference, DIM, [(2, 1), (2, 4), (1, 9)])


@pytest.mark.parametrize("causal", [True, False])
def test_topk_at_least_length_equals_attention(causal):
    torch.manual_seed(0)
    dense = create("attention", DIM, causal=causal, heads=4, kv_heads=4, rope=True).double()
    sparse = create("topk_attention", DIM, causal=causal, heads=4, topk=16, rope=True).double()
    sparse.load_state_dict(dense.state_dict())
    x = torch.randn(2, 13, DIM, dtype=torch.float64)
    assert rel_err(sparse(x), dense(x)) < 1e-12


def test_topk_below_length_differs_from_attention():
    torch.manual_seed(0)
    dense = create("attention", DIM, causal=True, heads=4, kv_heads=4).double()
    sparse = create("topk_attention", DIM, causal=True, heads=4, topk=8).double()
    sparse.load_state_dict(dense.state_dict())
    x = torch.randn(1, 13, DIM, dtype=torch.float64)
    assert rel_err(sparse(x)[:, :8], dense(x)[:, :8]) < 1e-12  # rows with <= 8 visible keys
    assert rel_err(sparse(x)[:, 8:], dense(x)[:, 8:]) > 1e-6


@pytest.mark.parametrize("topk", [2, 4])
def test_causal_and_step(topk):
    torch.manual_seed(0)
    module = TopKAttention(DIM, causal=True, heads=2, topk=topk)
    assert_causal(module, DIM)
    assert_step_matches_forward(module, DIM)


def test_attention_weights_reproduce_forward():
    torch.manual_seed(0)
    length, topk = 20, 8
    for causal in (True, False):
        op = create("topk_attention", 32, causal=causal, heads=4, topk=topk).double()
        x = torch.randn(2, length, 32, dtype=torch.float64)
        w = op.attention_weights(x)  # (B, H, L, L)
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, length, dtype=torch.float64))
        visible = torch.arange(1, length + 1).clamp(max=topk) if causal else torch.full((length,), topk)
        assert torch.equal((w > 0).sum(-1), visible.expand(2, 4, length))  # k largest visible keys per row
        if causal:
            assert (w.triu(1) == 0).all()
        _, _, v = op.qkv(x)
        y = op.out((w @ v).transpose(1, 2).reshape(2, length, 32))
        torch.testing.assert_close(y, op(x))
