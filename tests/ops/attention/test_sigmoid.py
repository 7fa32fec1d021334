import math

import pytest
import torch

from einsearch.ops import create
from tests.ops.attention.test_checks import (
    assert_causal, assert_matches_reference, heads, linear, ref_rms, ref_rope, rel_err, unheads,
)

DIM = 16


def reference(module, x):
    """Plain loops: y_i = sum_{j visible} sigmoid(q_i.k_j / sqrt(d) - log L) v_j."""
    h, length = module.heads, x.shape[1]
    q, k, v = heads(linear(x, module.q), h), heads(linear(x, module.k), h), heads(linear(x, module.v), h)
    if hasattr(module.q_norm, "weight"):  # qk_norm on
        q, k = ref_rms(q, module.q_norm.weight), ref_rms(k, module.k_norm.weight)
    if module.rope:
        q, k = ref_rope(q), ref_rope(k)
    d = q.shape[-1]
    rows = []
    for i in range(length):
        keys = range(i + 1) if module.causal else range(length)
        rows.append(sum(torch.sigmoid((q[..., i, :] * k[..., j, :]).sum(-1, keepdim=True) / math.sqrt(d)
                                      - math.log(length)) * v[..., j, :] for j in keys))
    return linear(unheads(torch.stack(rows, -2)), module.out)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_heads,qk_norm,rope", [(2, True, True), (4, False, True), (1, True, False)])
def test_matches_plain_sigmoid_attention(causal, n_heads, qk_norm, rope):
    torch.manual_seed(0)
    module = create("sigmoid_attention", DIM, causal=causal, heads=n_heads, qk_norm=qk_norm, rope=rope)
    if qk_norm:  # move the norm gains off 1 so that their gradients are tested meaningfully
        with torch.no_grad():
            module.q_norm.weight.uniform_(0.5, 1.5)
            module.k_norm.weight.uniform_(0.5, 1.5)
    assert_matches_reference(module, reference, DIM)


@pytest.mark.parametrize("qk_norm", [True, False])
def test_causal(qk_norm):
    torch.manual_seed(0)
    assert_causal(create("sigmoid_attention", DIM, causal=True, qk_norm=qk_norm), DIM)


def test_rows_are_not_normalised():
    """With q = k = 0 every weight is sigmoid(-log L) = 1 / (L + 1): the output is sum_j v_j / (L + 1)."""
    module = create("sigmoid_attention", DIM, causal=False, qk_norm=False, rope=False).double()
    with torch.no_grad():
        module.q.weight.zero_()
        module.out.weight.copy_(torch.eye(DIM))
    x = torch.randn(1, 5, DIM, dtype=torch.float64)
    expected = linear(x, module.v).sum(1, keepdim=True).expand(1, 5, DIM) / 6
    assert rel_err(module(x), expected) < 1e-12


def test_attention_weights_reproduce_forward():
    torch.manual_seed(0)
    length = 12
    for causal in (True, False):
        op = create("sigmoid_attention", 32, causal=causal, heads=4).double()
        x = torch.randn(2, length, 32, dtype=torch.float64)
        w = op.attention_weights(x)  # (B, H, L, L), not row-normalised
        assert (w >= 0).all() and (w <= 1).all()
        if causal:
            past = torch.ones(length, length, dtype=torch.bool).tril()
            assert (w[..., ~past] == 0).all() and (w[..., past] > 0).all()
        v = op.v(x).view(2, length, 4, 8).transpose(1, 2)
        y = op.out((w @ v).transpose(1, 2).reshape(2, length, 32))
        torch.testing.assert_close(y, op(x))
