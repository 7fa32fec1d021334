import itertools

import pytest
import torch
import torch.nn.functional as F

from einsearch.ops import create, get_op
from tests.ops.attention.test_checks import (
    assert_causal, assert_matches_reference, assert_step_matches_forward, causal_or_full, heads, linear,
    ref_masked_softmax_attention, ref_rope, rel_err, unheads,
)

DIM = 16


def reference(module, x):
    """Explicit masked softmax; each query head h reads KV head h // (heads / kv_heads)."""
    p = module.qkv
    q, k, v = heads(linear(x, p.q), p.heads), heads(linear(x, p.k), p.kv_heads), heads(linear(x, p.v), p.kv_heads)
    if p.rope:
        q, k = ref_rope(q), ref_rope(k)
    group = p.heads // p.kv_heads
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return linear(unheads(ref_masked_softmax_attention(q, k, v, causal_or_full(module.causal))), module.out)


CASES = [(4, 4, True), (4, 2, True), (4, 1, False), (2, 1, True), (1, 1, False)]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_heads,kv_heads,rope", CASES)
def test_matches_masked_softmax(causal, n_heads, kv_heads, rope):
    torch.manual_seed(0)
    module = create("attention", DIM, causal=causal, heads=n_heads, kv_heads=kv_heads, rope=rope)
    assert_matches_reference(module, reference, DIM)


@pytest.mark.parametrize("causal", [True, False])
def test_equals_sdpa_with_repeated_kv(causal):
    """The identity: our attention == torch SDPA on explicitly repeated KV heads."""
    torch.manual_seed(0)
    module = create("attention", DIM, causal=causal, heads=4, kv_heads=2, rope=False).double()
    x = torch.randn(2, 9, DIM, dtype=torch.float64)
    q, k, v = heads(linear(x, module.qkv.q), 4), heads(linear(x, module.qkv.k), 2), heads(linear(x, module.qkv.v), 2)
    y = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), is_causal=causal)
    assert rel_err(module(x), linear(unheads(y), module.out)) < 1e-12


@pytest.mark.parametrize("n_heads,kv_heads,rope", CASES)
def test_causal_and_step(n_heads, kv_heads, rope):
    torch.manual_seed(0)
    module = create("attention", DIM, causal=True, heads=n_heads, kv_heads=kv_heads, rope=rope)
    assert_causal(module, DIM)
    assert_step_matches_forward(module, DIM)


def test_noncausal_sees_the_future():
    torch.manual_seed(0)
    module = create("attention", DIM, causal=False)
    x = torch.randn(1, 6, DIM)
    x2 = x.clone()
    x2[:, 5] += 1.0
    assert not torch.allclose(module(x)[:, 0], module(x2)[:, 0])


def test_registration_state_and_validation():
    spec = get_op("attention")
    assert spec.state(64, 100, {"heads": 4, "kv_heads": 2, "rope": True}) == 2 * 100 * 2 * 16
    assert spec.check_dim(64, {"heads": 4, "kv_heads": 8, "rope": True}) is not None
    with pytest.raises(ValueError, match="kv_heads"):
        create("attention", 64, heads=2, kv_heads=4)
    for n_heads, kv_heads, rope in itertools.product(*spec.hparams.values()):
        hp = {"heads": n_heads, "kv_heads": kv_heads, "rope": rope}
        if spec.check_dim(32, hp) is None:
            y = create("attention", 32, causal=True, **hp)(torch.randn(1, 5, 32))
            assert y.shape == (1, 5, 32)


def test_attention_weights_reproduce_forward():
    torch.manual_seed(0)
    for causal, kv_heads in ((True, 2), (False, 4)):
        op = create("attention", 32, causal=causal, heads=4, kv_heads=kv_heads).double()
        x = torch.randn(2, 9, 32, dtype=torch.float64)
        w = op.attention_weights(x)  # (B, H, L, L)
        assert torch.allclose(w.sum(-1), torch.ones_like(w[..., 0]))
        if causal:
            assert (w.triu(1) == 0).all()
        _, _, v = op.qkv(x)
        v = v.repeat_interleave(4 // kv_heads, dim=1)
        y = op.out((w @ v).transpose(1, 2).reshape(2, 9, 32))
        torch.testing.assert_close(y, op(x))
