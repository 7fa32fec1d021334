import pytest
import torch

from einsearch.ops import create
from einsearch.ops.attention.halo import HaloAttention
from tests.ops.attention.test_checks import (
    assert_causal, assert_matches_reference, assert_step_matches_forward, heads, linear,
    ref_masked_softmax_attention, ref_rope, unheads,
)

DIM = 16
SHAPES = [(2, 1), (2, 3), (2, 4), (1, 13), (1, 10)]


def in_halo(causal, block):
    """Query i in block n = i // block: keys from block n-1 on, up to i (causal) or to block n+1's end."""
    if causal:
        return lambda i, j: (i // block - 1) * block <= j <= i
    return lambda i, j: (i // block - 1) * block <= j < (i // block + 2) * block


def reference(module, x):
    p = module.qkv
    q, k, v = heads(linear(x, p.q), p.heads), heads(linear(x, p.k), p.heads), heads(linear(x, p.v), p.heads)
    if p.rope:
        q, k = ref_rope(q), ref_rope(k)
    y = ref_masked_softmax_attention(q, k, v, in_halo(module.causal, module.block))
    return linear(unheads(y), module.out)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("block,n_heads,rope", [(4, 2, True), (3, 1, False), (2, 4, True)])
def test_matches_blocked_softmax(causal, block, n_heads, rope):
    torch.manual_seed(0)
    module = HaloAttention(DIM, causal=causal, heads=n_heads, block=block, rope=rope)
    assert_matches_reference(module, reference, DIM, SHAPES)


def test_padding_mask_not_inverted():
    """The first causal query sees only itself: its output is out(v_0) exactly. With the padding mask
    inverted (the known HaloNet bug) it would attend the zero padding instead."""
    torch.manual_seed(0)
    module = create("halo_attention", DIM, causal=True, heads=2, block=8, rope=False).double()
    x = torch.randn(1, 5, DIM, dtype=torch.float64)
    expected = linear(linear(x[:, :1], module.qkv.v), module.out)
    assert torch.allclose(module(x)[:, :1], expected, atol=1e-12)


@pytest.mark.parametrize("block", [3, 4])
def test_causal_and_step(block):
    torch.manual_seed(0)
    module = HaloAttention(DIM, causal=True, heads=2, block=block)
    assert_causal(module, DIM, length=11, t=6)
    assert_step_matches_forward(module, DIM, length=11)


def test_registered_choices_run():
    torch.manual_seed(0)
    for block in (8, 16, 32, 64):
        module = create("halo_attention", 32, causal=True, block=block)
        assert module(torch.randn(1, 37, 32)).shape == (1, 37, 32)


def test_attention_weights_reproduce_forward():
    torch.manual_seed(0)
    length, block = 27, 8  # not a multiple of the block: the padded last block is covered
    for causal in (True, False):
        op = create("halo_attention", 32, causal=causal, heads=4, block=block).double()
        x = torch.randn(2, length, 32, dtype=torch.float64)
        w = op.attention_weights(x)  # (B, H, L, L)
        i, j = torch.arange(length)[:, None], torch.arange(length)[None, :]
        bi, bj = i // block, j // block
        allowed = ((bj == bi) | (bj == bi - 1)) & (j <= i) if causal else (bj - bi).abs() <= 1
        assert (w[..., ~allowed] == 0).all() and (w[..., allowed] > 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, length, dtype=torch.float64))
        _, _, v = op.qkv(x)
        y = op.out((w @ v).transpose(1, 2).reshape(2, length, 32))
        torch.testing.assert_close(y, op(x))
