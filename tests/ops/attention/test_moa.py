import pytest
import torch

from einsearch.ops import create, get_op
from einsearch.ops.attention.moa import MixtureOfSparseAttention
from tests.ops.attention.test_checks import (
    assert_causal, assert_matches_reference, heads, linear, ref_masked_softmax_attention, ref_rope, rel_err,
    unheads,
)

DIM = 16
# lengths below and above the spans, odd ones included
SHAPES = [(2, 1), (2, 4), (1, 13), (2, 9), (1, 20), (1, 30)]


def ref_spans(profile, n_heads, window, length):
    """The profiles written out: span_h = alpha_h + floor(beta_h * L), at least 1."""
    rules = {
        "uniform": [(window, 0, 1)] * n_heads,
        "elastic": [(window // 2, 1, 4)] * n_heads,
        "graded": [(window, h, n_heads) for h in range(n_heads)],
        "local_global": [(window, 0, 1) if h < n_heads // 2 else (0, 1, 1) for h in range(n_heads)],
    }[profile]
    return [max(1, alpha + (num * length) // den) for alpha, num, den in rules]


def in_span(causal, span):
    if causal:
        return lambda i, j: i - span < j <= i
    return lambda i, j: abs(i - j) < span


def reference(module, x, spans=None):
    """Head by head: explicit span mask and softmax (float64)."""
    p = module.qkv
    q, k, v = heads(linear(x, p.q), p.heads), heads(linear(x, p.k), p.heads), heads(linear(x, p.v), p.heads)
    if p.rope:
        q, k = ref_rope(q), ref_rope(k)
    spans = spans or ref_spans(module.profile, p.heads, module.window, x.shape[1])
    outs = [ref_masked_softmax_attention(q[:, h:h + 1], k[:, h:h + 1], v[:, h:h + 1], in_span(module.causal, s))
            for h, s in enumerate(spans)]
    return linear(unheads(torch.cat(outs, 1)), module.out)


CASES = [("uniform", 2, 3, True), ("elastic", 4, 4, False), ("graded", 2, 3, True),
         ("graded", 4, 2, False), ("local_global", 4, 3, True), ("local_global", 2, 5, False)]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("profile,n_heads,window,rope", CASES)
def test_matches_per_head_span_masks(causal, profile, n_heads, window, rope):
    torch.manual_seed(0)
    module = MixtureOfSparseAttention(DIM, causal=causal, heads=n_heads, profile=profile, window=window, rope=rope)
    assert_matches_reference(module, reference, DIM, SHAPES)


@pytest.mark.parametrize("causal", [True, False])
def test_blocked_path_with_different_spans_per_head(causal):
    """The blocked form with one mask per head (spans 2, 5, 1, 4 forced: the profiles' spans are
    either equal across heads or too wide for the blocked form at these lengths)."""
    torch.manual_seed(0)
    module = MixtureOfSparseAttention(DIM, causal=causal, heads=4, profile="uniform", window=5)
    module.spans = lambda length: [2, 5, 1, 4]
    assert_matches_reference(module, lambda m, x: reference(m, x, [2, 5, 1, 4]), DIM, [(2, 16), (1, 23)])


@pytest.mark.parametrize("profile", ["uniform", "elastic", "graded", "local_global"])
def test_spans_of_the_profiles(profile):
    module = MixtureOfSparseAttention(DIM, heads=4, profile=profile, window=8)
    for length in (1, 5, 16, 33, 256):
        assert module.spans(length) == ref_spans(profile, 4, 8, length)
    assert create("moa", DIM, heads=4, profile="graded", window=16).spans(64) == [16, 32, 48, 64]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("profile", ["uniform", "graded", "elastic"])
def test_spans_covering_the_sequence_equal_softmax_attention(causal, profile):
    """The identity: with every span >= L, MoA is softmax attention (same weights, same rotary)."""
    torch.manual_seed(0)
    moa = create("moa", DIM, causal=causal, heads=4, profile=profile, window=64, rope=True).double()
    mha = create("attention", DIM, causal=causal, heads=4, kv_heads=4, rope=True).double()
    moa.load_state_dict(mha.state_dict())  # same parameter names: qkv.{q,k,v}, out
    for length in (5, 31, 42):
        assert min(moa.spans(length)) >= length
        x = torch.randn(2, length, DIM, dtype=torch.float64)
        assert rel_err(moa(x), mha(x)) < 1e-12
    x = torch.randn(2, 90, DIM, dtype=torch.float64)
    assert rel_err(moa(x), mha(x)) > 1e-3  # once spans fall below L, the output differs


def test_span_limits_each_head():
    """Causal head h at query i depends on input i - span_h + 1 and not on i - span_h."""
    torch.manual_seed(0)
    module = MixtureOfSparseAttention(DIM, causal=True, heads=2, profile="graded", window=3).double()
    length, i = 14, 12
    spans = module.spans(length)  # [3, 10]
    assert spans == [3, 10]
    x = torch.randn(1, length, DIM, dtype=torch.float64)
    for h, span in enumerate(spans):
        def head_out(inp):
            _, _, v = module.qkv(inp)
            return (module.attention_weights(inp) @ v)[0, h, i]
        far, near = x.clone(), x.clone()
        far[:, i - span] += 1.0
        near[:, i - span + 1] += 1.0
        assert torch.equal(head_out(far), head_out(x))
        assert not torch.allclose(head_out(near), head_out(x))


@pytest.mark.parametrize("causal", [True, False])
def test_attention_weights_reproduce_forward(causal):
    torch.manual_seed(0)
    module = create("moa", 32, causal=causal, heads=4, profile="graded", window=16).double()
    for length in (9, 40):  # dense and blocked paths
        x = torch.randn(2, length, 32, dtype=torch.float64)
        w = module.attention_weights(x)
        assert torch.allclose(w.sum(-1), torch.ones_like(w[..., 0]))
        if causal:
            assert (w.triu(1) == 0).all()
        _, _, v = module.qkv(x)
        assert rel_err(module.out(unheads(w @ v)), module(x)) < 1e-12


@pytest.mark.parametrize("profile,window", [("uniform", 3), ("graded", 2), ("local_global", 4)])
def test_causal(profile, window):
    torch.manual_seed(0)
    module = MixtureOfSparseAttention(DIM, causal=True, heads=4, profile=profile, window=window)
    assert_causal(module, DIM, length=13, t=7)


def test_registration():
    spec = get_op("moa")
    hp = spec.resolve({"heads": 4, "profile": "graded", "window": 16})
    # spans at L=64: 16, 32, 48, 64 -> cached positions summed over heads, times head width 16
    assert spec.state(64, 64, hp) == 2 * 16 * (16 + 32 + 48 + 64)
    assert spec.extra_flops(64, 64, hp) == 4 * 16 * (16 + 32 + 48 + 64)
    assert spec.state(64, 8, hp) == 2 * 16 * 4 * 8  # spans clipped to L
    assert spec.check_dim(20, {**hp, "heads": 8}) is not None
    with pytest.raises(ValueError, match="profile"):
        MixtureOfSparseAttention(DIM, profile="nope")
    with pytest.raises(ValueError, match="moa"):
        create("moa", 20, heads=8)
