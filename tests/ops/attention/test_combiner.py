import pytest
import torch

from einsearch.ops import create, get_op
from einsearch.ops.attention.combiner import CombinerAttention
from tests.ops.attention.test_checks import (
    assert_causal, assert_matches_reference, heads, linear, ref_masked_softmax_attention, ref_rope, rel_err,
    unheads,
)

DIM = 16
# L below, equal to and not divisible by the block sizes used
SHAPES = [(2, 1), (2, 3), (1, 8), (1, 13), (2, 10)]


def ref_relu(x):
    return x * (x > 0)


def ref_summaries(module, q, k, v, block):
    """Summary key and value of each block, position by position. q, k, v (B, H, L, d) -> lists."""
    length, d = k.shape[-2], k.shape[-1]
    keys, values = [], []
    for start in range(0, length, block):
        idx = list(range(start, min(start + block, length)))
        if module.summary == "mean":
            keys.append(sum(k[..., j, :] for j in idx) / len(idx))
            values.append(sum(v[..., j, :] for j in idx) / len(idx))
            continue
        pooled_k = torch.stack([ref_relu(k[..., j, :] @ module.pool_k.weight.T) for j in idx]).max(0).values
        pooled_q = torch.stack([ref_relu(q[..., j, :] @ module.pool_q.weight.T) for j in idx]).max(0).values
        logits = torch.stack([(pooled_q * k[..., j, :]).sum(-1) / d ** 0.5 for j in idx], -1)
        w = torch.exp(logits - logits.max(-1, keepdim=True).values)
        w = w / w.sum(-1, keepdim=True)
        keys.append(pooled_k)
        values.append(sum(w[..., n, None] * v[..., j, :] for n, j in enumerate(idx)))
    return torch.stack(keys, -2), torch.stack(values, -2)


def reference(module, x):
    """Softmax over L + n_blocks keys (the positions, then one summary per block) with an explicit
    (L x (L + n_blocks)) mask: own block directly (causal: j <= i), other blocks (causal: earlier
    blocks) through their summaries."""
    p, block, length = module.qkv, module.block, x.shape[1]
    q, k, v = heads(linear(x, p.q), p.heads), heads(linear(x, p.k), p.heads), heads(linear(x, p.v), p.heads)
    if p.rope:
        q, k = ref_rope(q), ref_rope(k)
    sk, sv = ref_summaries(module, q, k, v, block)
    keys, values = torch.cat([k, sk], -2), torch.cat([v, sv], -2)

    def allowed(i, j):
        if j < length:  # a position: directly, within the query's own block
            return j // block == i // block and (j <= i or not module.causal)
        r = j - length  # block r's summary
        return r < i // block if module.causal else r != i // block

    return linear(unheads(ref_masked_softmax_attention(q, keys, values, allowed)), module.out)


CASES = [(4, 2, "mean", True), (3, 1, "mean", False), (4, 4, "max", True), (5, 2, "max", False), (2, 2, "max", True)]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("block,n_heads,summary,rope", CASES)
def test_matches_explicit_summary_mask(causal, block, n_heads, summary, rope):
    torch.manual_seed(0)
    module = CombinerAttention(DIM, causal=causal, heads=n_heads, block=block, summary=summary, rope=rope)
    assert_matches_reference(module, reference, DIM, SHAPES)


def _attention_with_same_weights(module, causal):
    mha = create("attention", DIM, causal=causal, heads=module.qkv.heads, kv_heads=module.qkv.heads,
                 rope=module.qkv.rope).double()
    missing = module.load_state_dict(mha.state_dict(), strict=False).missing_keys
    assert set(missing) <= {"pool_k.weight", "pool_q.weight"}
    return mha


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("summary", ["mean", "max"])
def test_one_block_is_softmax_attention(causal, summary):
    """The identity: with block >= L there is no summary and Combiner is softmax attention."""
    torch.manual_seed(0)
    module = create("combiner", DIM, causal=causal, heads=2, block=16, summary=summary).double()
    mha = _attention_with_same_weights(module, causal)
    for length in (1, 9, 16):
        x = torch.randn(2, length, DIM, dtype=torch.float64)
        assert rel_err(module(x), mha(x)) < 1e-12
    x = torch.randn(2, 40, DIM, dtype=torch.float64)
    assert rel_err(module(x), mha(x)) > 1e-3  # summaries differ from the keys they summarise


@pytest.mark.parametrize("causal", [True, False])
def test_unit_blocks_with_means_are_softmax_attention(causal):
    """The identity: blocks of one position summarised by their mean are those positions, so every
    key is seen exactly once: softmax attention at any length."""
    torch.manual_seed(0)
    module = CombinerAttention(DIM, causal=causal, heads=4, block=1, summary="mean").double()
    mha = _attention_with_same_weights(module, causal)
    x = torch.randn(2, 11, DIM, dtype=torch.float64)
    assert rel_err(module(x), mha(x)) < 1e-12


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("summary", ["mean", "max"])
def test_attention_weights_reproduce_forward(causal, summary):
    torch.manual_seed(0)
    module = create("combiner", 32, causal=causal, heads=4, block=8, summary=summary).double()
    x = torch.randn(2, 29, 32, dtype=torch.float64)
    w = module.attention_weights(x)  # (B, H, L, L)
    assert w.shape == (2, 4, 29, 29)
    assert torch.allclose(w.sum(-1), torch.ones_like(w[..., 0]))
    past = torch.ones(29, 29, dtype=torch.bool).tril() if causal else torch.ones(29, 29, dtype=torch.bool)
    assert (w[..., past] > 0).all() and (w[..., ~past] == 0).all()  # full reach (causal: the whole past)
    _, _, v = module.qkv(x)
    assert rel_err(module.out(unheads(w @ v)), module(x)) < 1e-12


@pytest.mark.parametrize("block,summary", [(4, "mean"), (4, "max"), (3, "max")])
def test_causal(block, summary):
    torch.manual_seed(0)
    module = CombinerAttention(DIM, causal=True, heads=2, block=block, summary=summary)
    for t in (4, 6, 9):  # a block's first, middle and a later block's position
        assert_causal(module, DIM, length=13, t=t)


def test_registration():
    spec = get_op("combiner")
    hp = spec.resolve({"block": 16})
    assert spec.state(64, 256, hp) == 2 * 64 * (16 + 16)
    assert spec.extra_flops(64, 40, hp) == 4 * 64 * (16 + 3)
    assert spec.state(64, 8, hp) == 2 * 64 * (8 + 1)
    assert spec.check_dim(20, {**hp, "heads": 8}) is not None
    with pytest.raises(ValueError, match="summary"):
        CombinerAttention(DIM, summary="sum")
    with pytest.raises(ValueError, match="combiner"):
        create("combiner", 20, heads=8)
