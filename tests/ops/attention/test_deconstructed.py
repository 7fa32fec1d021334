"""Deconstructed attention variants against explicit masked-softmax loops (float64), identities,
causality and length handling."""
from __future__ import annotations

import math

import pytest
import torch

from einsearch.ops import create
from einsearch.ops.attention.deconstructed import MAX_DISTANCE
from einsearch.ops.context import Context
from tests.ops.attention.test_checks import (
    assert_causal, assert_matches_reference, heads, linear, ref_masked_softmax_attention, ref_rms, ref_rope,
    rel_err, unheads,
)

DIM = 16
SHAPES = [(2, 1), (2, 7), (1, 13)]


def ref_mix(weight_of, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """Row by row: softmax over allowed j of weight_of(h, i, j) (a scalar tensor), times v (B, H, L, d)."""
    n_heads, length = v.shape[1], v.shape[2]
    out = torch.zeros_like(v)
    for h in range(n_heads):
        for i in range(length):
            keys = [j for j in range(length) if j <= i or not causal]
            logits = torch.stack([weight_of(h, i, j) for j in keys])
            w = torch.exp(logits - logits.max())
            w = w / w.sum()
            for n, j in enumerate(keys):
                out[:, h, i] = out[:, h, i] + w[n] * v[:, h, j]
    return out


# ---- fixed mixing matrix ------------------------------------------------------------------------
def fixed_reference(module, x):
    v = heads(linear(x, module.v), module.heads)
    y = ref_mix(lambda h, i, j: module.logits[h, i, j], v, module.causal)
    return linear(unheads(y), module.out)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_heads", [1, 4])
def test_fixed_mix_matches_loops(causal, n_heads):
    torch.manual_seed(0)
    module = create("fixed_mix_attention", DIM, causal=causal, seq_len=13, heads=n_heads)
    with torch.no_grad():
        module.logits.normal_()  # away from the uniform initial value
    assert_matches_reference(module, fixed_reference, DIM, SHAPES)  # lengths 1, 7 < seq_len, 13 = seq_len


def test_fixed_mix_uniform_lower_triangular_is_causal_running_mean():
    """The identity: M = 0 (uniform over j <= i), identity projections -> y_i = mean(x_0..x_i)."""
    module = create("fixed_mix_attention", DIM, causal=True, seq_len=20, heads=1).double()
    with torch.no_grad():
        module.v.weight.copy_(torch.eye(DIM))
        module.out.weight.copy_(torch.eye(DIM))
    assert (module.logits == 0).all()  # the initial value
    x = torch.randn(2, 20, DIM, dtype=torch.float64)
    running_mean = torch.stack([x[:, : i + 1].mean(1) for i in range(20)], 1)
    assert rel_err(module(x), running_mean) < 1e-12
    weights = module.attention_weights(x)[0, 0]
    assert torch.allclose(weights, torch.tril(torch.ones(20, 20, dtype=torch.float64)) / torch.arange(1, 21)[:, None])


def test_fixed_mix_rejects_longer_inputs_and_prefix_is_consistent():
    torch.manual_seed(0)
    module = create("fixed_mix_attention", DIM, causal=True, seq_len=9, heads=2).double()
    with torch.no_grad():
        module.logits.normal_()
    with pytest.raises(ValueError, match="seq_len 9"):
        module(torch.randn(1, 10, DIM, dtype=torch.float64))
    x = torch.randn(1, 9, DIM, dtype=torch.float64)
    assert rel_err(module(x[:, :5]), module(x)[:, :5]) < 1e-12  # a prefix runs like the full input


# ---- position-only weights ------------------------------------------------------------------------
def ref_bucket(i: int, j: int, buckets: int, causal: bool) -> int:
    r = i - j
    d = abs(r)
    exact = buckets // 2
    if d < exact:
        b = d
    else:
        scaled = math.log(d / exact) / math.log(MAX_DISTANCE / exact) * (buckets - exact)
        b = min(buckets - 1, exact + math.floor(scaled))
    return b + (buckets if (not causal and r < 0) else 0)


def position_reference(module, x):
    v = heads(linear(x, module.v), module.heads)
    y = ref_mix(lambda h, i, j: module.bias[h, ref_bucket(i, j, module.buckets, module.causal)], v, module.causal)
    return linear(unheads(y), module.out)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_heads,buckets", [(2, 16), (4, 32)])
def test_position_attention_matches_loops(causal, n_heads, buckets):
    torch.manual_seed(0)
    module = create("position_attention", DIM, causal=causal, heads=n_heads, buckets=buckets)
    with torch.no_grad():
        module.bias.add_(torch.randn_like(module.bias))
    assert_matches_reference(module, position_reference, DIM, SHAPES)


def test_position_buckets_long_distances():
    """Buckets beyond the exact range, up to and past MAX_DISTANCE, against the scalar formula."""
    from einsearch.ops.attention.deconstructed import relative_buckets

    for causal in (True, False):
        index = relative_buckets(300, 16, causal)
        for i, j in [(299, 0), (299, 171), (200, 72), (150, 140), (40, 8), (0, 299), (5, 250), (17, 17)]:
            assert index[i, j].item() == ref_bucket(i, j, 16, causal), (i, j, causal)


def test_position_attention_any_length_and_weights_depend_on_distance_only():
    torch.manual_seed(0)
    module = create("position_attention", DIM, causal=True, heads=2, buckets=16).double()
    x = torch.randn(1, 300, DIM, dtype=torch.float64)  # longer than MAX_DISTANCE
    y = module(x)
    assert torch.isfinite(y).all()
    assert rel_err(module(x[:, :40]), y[:, :40]) < 1e-12
    w = module.attention_weights(torch.randn(3, 40, DIM, dtype=torch.float64))
    assert torch.equal(w[0], w[2])  # input-independent
    # a row's unnormalised weights depend on i - j only: ratios w[i, j] / w[i, i] are shift-invariant
    ratio_a = w[0, :, 30, 20:31] / w[0, :, 30, 30:31]
    ratio_b = w[0, :, 35, 25:36] / w[0, :, 35, 35:36]
    assert torch.allclose(ratio_a, ratio_b)


# ---- negative L2 distance -------------------------------------------------------------------------
def l2_weights_reference(module, x):
    p = module.qkv
    q, k = heads(linear(x, p.q), p.heads), heads(linear(x, p.k), p.heads)
    if p.rope:
        q, k = ref_rope(q), ref_rope(k)
    d, length = q.shape[-1], x.shape[1]
    rows = torch.zeros(x.shape[0], p.heads, length, length, dtype=x.dtype)
    for i in range(length):
        keys = [j for j in range(length) if j <= i or not module.causal]
        logits = torch.stack([-((q[:, :, i] - k[:, :, j]) ** 2).sum(-1) / math.sqrt(d) for j in keys], -1)
        w = torch.exp(logits - logits.max(-1, keepdim=True).values)
        rows[:, :, i, keys] = w / w.sum(-1, keepdim=True)
    return rows


def l2_reference(module, x):
    v = heads(linear(x, module.qkv.v), module.qkv.heads)
    return linear(unheads(l2_weights_reference(module, x) @ v), module.out)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_heads,rope", [(1, False), (2, True), (4, True)])
def test_l2_attention_matches_loops(causal, n_heads, rope):
    torch.manual_seed(0)
    module = create("l2_attention", DIM, causal=causal, heads=n_heads, rope=rope)
    assert_matches_reference(module, l2_reference, DIM, SHAPES)
    x = torch.randn(2, 9, DIM, dtype=torch.float64)
    assert rel_err(module.attention_weights(x), l2_weights_reference(module, x)) < 1e-10


def test_l2_differs_from_dot_product():
    """Same projections, dot-product softmax attention gives another output (the form matters)."""
    torch.manual_seed(0)
    module = create("l2_attention", DIM, causal=True, heads=2, rope=False).double()
    x = torch.randn(2, 9, DIM, dtype=torch.float64)
    p = module.qkv
    q, k, v = (heads(linear(x, lin), 2) for lin in (p.q, p.k, p.v))
    dot = linear(unheads(ref_masked_softmax_attention(q, k, v, lambda i, j: j <= i)), module.out)
    assert rel_err(module(x), dot) > 1e-3


# ---- queries and keys from the embedding ----------------------------------------------------------
def embed_reference(e):
    def reference(module, x):
        src = ref_rms(e if e is not None else x, module.norm.weight)
        q, k = heads(linear(src, module.q), module.heads), heads(linear(src, module.k), module.heads)
        if module.rope:
            q, k = ref_rope(q), ref_rope(k)
        v = heads(linear(x, module.v), module.heads)
        allowed = (lambda i, j: j <= i) if module.causal else (lambda i, j: True)
        return linear(unheads(ref_masked_softmax_attention(q, k, v, allowed)), module.out)
    return reference


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_heads,rope", [(1, False), (4, True)])
def test_embed_qk_matches_loops_with_context(causal, n_heads, rope):
    torch.manual_seed(0)
    module = create("embed_qk_attention", DIM, causal=causal, heads=n_heads, rope=rope)
    for batch, length in SHAPES:
        e = torch.randn(batch, length, DIM, dtype=torch.float64)
        module.context = Context(embedding=e)
        assert_matches_reference(module, embed_reference(e), DIM, [(batch, length)], seed=length)
    module.context = None  # the fallback: e = x
    assert_matches_reference(module, embed_reference(None), DIM, SHAPES)


def test_embed_qk_reads_keys_from_embedding_not_hidden_state():
    torch.manual_seed(0)
    module = create("embed_qk_attention", DIM, causal=True, heads=2).double()
    x, e = torch.randn(2, 9, DIM, dtype=torch.float64), torch.randn(2, 9, DIM, dtype=torch.float64)
    module.context = Context(embedding=e)
    w = module.attention_weights(x)
    assert torch.equal(w, module.attention_weights(torch.randn_like(x)))  # hidden state: values only
    assert not torch.allclose(w, _weights_without_context(module, x))  # e = x would give other weights
    with pytest.raises(ValueError, match="embedding shape"):
        module(torch.randn(2, 8, DIM, dtype=torch.float64))


def _weights_without_context(module, x):
    saved, module.context = module.context, None
    try:
        return module.attention_weights(x)
    finally:
        module.context = saved


# ---- causality ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,hp", [("fixed_mix_attention", {"heads": 2, "seq_len": 11}),
                                     ("position_attention", {"heads": 2, "buckets": 16}),
                                     ("l2_attention", {"heads": 2}), ("embed_qk_attention", {"heads": 2})])
def test_causal(name, hp):
    torch.manual_seed(0)
    module = create(name, DIM, causal=True, **hp)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert_causal(module, DIM, length=11, t=6)


def test_embed_qk_causal_in_the_embedding():
    """Perturbing the embedding (and the hidden state) at t leaves outputs before t bit-identical."""
    torch.manual_seed(0)
    module = create("embed_qk_attention", DIM, causal=True, heads=2)
    x, e = torch.randn(2, 11, DIM), torch.randn(2, 11, DIM)
    x2, e2 = x.clone(), e.clone()
    e2[:, 6] += torch.randn(2, DIM)
    x2[:, 6] += torch.randn(2, DIM)
    with torch.no_grad():
        module.context = Context(embedding=e)
        y = module(x)
        module.context = Context(embedding=e2)
        y2 = module(x2)
    assert torch.equal(y[:, :6], y2[:, :6]) and not torch.allclose(y[:, 6], y2[:, 6])
