import pytest
import torch
import torch.nn.functional as F

from einsearch.ops import create
from einsearch.ops.attention.sliding_window import SlidingWindowAttention
from tests.ops.attention.test_checks import (
    assert_causal, assert_matches_reference, assert_step_matches_forward, heads, linear,
    ref_masked_softmax_attention, ref_rope, rel_err, unheads,
)

DIM = 16
# lengths below, at and above the window, odd ones included
SHAPES = [(2, 1), (2, 3), (2, 4), (1, 13), (1, 9)]


def in_window(causal, window):
    if causal:
        return lambda i, j: i - window < j <= i
    return lambda i, j: abs(i - j) < window


def reference(module, x):
    p = module.qkv
    q, k, v = heads(linear(x, p.q), p.heads), heads(linear(x, p.k), p.heads), heads(linear(x, p.v), p.heads)
    if p.rope:
        q, k = ref_rope(q), ref_rope(k)
    y = ref_masked_softmax_attention(q, k, v, in_window(module.causal, module.window))
    return linear(unheads(y), module.out)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window,n_heads,rope", [(4, 2, True), (3, 1, False), (5, 4, True)])
def test_matches_banded_softmax(causal, window, n_heads, rope):
    torch.manual_seed(0)
    module = SlidingWindowAttention(DIM, causal=causal, heads=n_heads, window=window, rope=rope)
    assert_matches_reference(module, reference, DIM, SHAPES)


@pytest.mark.parametrize("causal", [True, False])
def test_equals_sdpa_with_band_mask(causal):
    """The identity: sliding window == SDPA with the explicit band mask (registered window 16, L 37)."""
    torch.manual_seed(0)
    module = create("sliding_window", DIM, causal=causal, heads=2, window=16, rope=False).double()
    x = torch.randn(2, 37, DIM, dtype=torch.float64)
    i, j = torch.arange(37)[:, None], torch.arange(37)[None, :]
    band = (i - j < 16) & (j <= i) if causal else (i - j).abs() < 16
    q, k, v = (heads(linear(x, lin), 2) for lin in (module.qkv.q, module.qkv.k, module.qkv.v))
    y = linear(unheads(F.scaled_dot_product_attention(q, k, v, attn_mask=band)), module.out)
    assert rel_err(module(x), y) < 1e-12


@pytest.mark.parametrize("window", [3, 4])
def test_causal_and_bounded_step(window):
    torch.manual_seed(0)
    module = SlidingWindowAttention(DIM, causal=True, heads=2, window=window)
    assert_causal(module, DIM, length=11, t=6)
    assert_step_matches_forward(module, DIM, length=11)
    state = module.init_state(1)
    for x_t in torch.randn(1, 8, DIM, dtype=torch.float64).unbind(1):  # module is float64 now
        _, state = module.step(x_t, state)
    assert state[0].shape[2] == window and int(state[2]) == 8


def test_window_limits_the_context():
    """Output i does not depend on input i - window (causal) but does on i - window + 1."""
    torch.manual_seed(0)
    module = SlidingWindowAttention(DIM, causal=True, heads=2, window=4)
    x = torch.randn(1, 12, DIM)
    far, near = x.clone(), x.clone()
    far[:, 6] += 1.0
    near[:, 7] += 1.0
    assert torch.equal(module(far)[:, 10], module(x)[:, 10])
    assert not torch.allclose(module(near)[:, 10], module(x)[:, 10])


def test_attention_weights_reproduce_forward():
    torch.manual_seed(0)
    length, window = 40, 16  # longer than the window: forward takes the blocked path
    for causal in (True, False):
        op = create("sliding_window", 32, causal=causal, heads=4, window=window).double()
        x = torch.randn(2, length, 32, dtype=torch.float64)
        w = op.attention_weights(x)  # (B, H, L, L)
        i, j = torch.arange(length)[:, None], torch.arange(length)[None, :]
        allowed = ((j <= i) & (i - j < window)) if causal else (i - j).abs() < window
        assert (w[..., ~allowed] == 0).all() and (w[..., allowed] > 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, length, dtype=torch.float64))
        _, _, v = op.qkv(x)
        y = op.out((w @ v).transpose(1, 2).reshape(2, length, 32))
        torch.testing.assert_close(y, op(x))
