import pytest
import torch

from einsearch.ops import create, get_op
from tests.ops.attention.test_checks import (
    assert_causal, assert_matches_reference, assert_step_matches_forward, causal_or_full, heads, linear,
    ref_masked_softmax_attention, ref_rms, ref_rope, rel_err, unheads,
)

DIM = 16


def reference(module, x):
    """The published equations with explicit masked softmax over the concatenated head keys."""
    h = module.heads
    c = ref_rms(linear(x, module.down_kv), module.kv_norm.weight)  # (B, L, d_c)
    k_c, v = heads(linear(c, module.up_k), h), heads(linear(c, module.up_v), h)
    k_r = ref_rope(linear(x, module.key_rope)[:, None])  # (B, 1, L, d_R)
    q_c, q_r = heads(linear(x, module.q), h), ref_rope(heads(linear(x, module.q_rope), h))
    q = torch.cat([q_c, q_r], -1)
    k = torch.cat([k_c, k_r.expand(-1, h, -1, -1)], -1)
    scale = (module.head_dim + module.rope_dim) ** -0.5
    y = ref_masked_softmax_attention(q, k, v, causal_or_full(module.causal), scale)
    return linear(unheads(y), module.out)


def randomise_norm(module):
    with torch.no_grad():
        module.kv_norm.weight.uniform_(0.5, 1.5)
    return module


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_heads,latent_div", [(4, 4), (2, 2), (1, 8)])
def test_matches_reference(causal, n_heads, latent_div):
    torch.manual_seed(0)
    module = randomise_norm(create("mla", DIM, causal=causal, heads=n_heads, latent_div=latent_div))
    assert_matches_reference(module, reference, DIM)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_heads,latent_div", [(4, 4), (2, 8)])
def test_expanded_equals_absorbed(causal, n_heads, latent_div):
    """The identity: W_uk absorbed into the queries (attention over the latent) == expanded heads,
    outputs and parameter gradients."""
    torch.manual_seed(0)
    module = randomise_norm(create("mla", DIM, causal=causal, heads=n_heads, latent_div=latent_div)).double()
    x = torch.randn(2, 11, DIM, dtype=torch.float64)
    y, y_abs = module(x), module.forward_absorbed(x)
    assert rel_err(y_abs, y) < 1e-12
    upstream = torch.randn_like(y)
    params = list(module.parameters())
    for g, g_abs in zip(torch.autograd.grad(y, params, upstream), torch.autograd.grad(y_abs, params, upstream)):
        assert rel_err(g_abs, g) < 1e-10


@pytest.mark.parametrize("n_heads,latent_div", [(4, 4), (1, 2)])
def test_causal_and_latent_cache_step(n_heads, latent_div):
    torch.manual_seed(0)
    module = create("mla", DIM, causal=True, heads=n_heads, latent_div=latent_div)
    assert_causal(module, DIM)
    assert_step_matches_forward(module, DIM)


def test_state_size_is_latent_plus_rope_per_position():
    spec = get_op("mla")
    module = create("mla", 64, causal=True, heads=4, latent_div=4)
    state = module.init_state(1)
    for x_t in torch.randn(1, 5, 64).unbind(1):
        _, state = module.step(x_t, state)
    assert state[0].numel() == spec.state(64, 5, {"heads": 4, "latent_div": 4}) == (16 + 8) * 5


def test_attention_weights_reproduce_forward():
    torch.manual_seed(0)
    length = 11
    for causal in (True, False):
        op = create("mla", 32, causal=causal, heads=4, latent_div=4).double()
        x = torch.randn(2, length, 32, dtype=torch.float64)
        w = op.attention_weights(x)  # (B, H, L, L)
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, length, dtype=torch.float64))
        if causal:
            assert (w.triu(1) == 0).all()
        v = op.up_v(op.kv_norm(op.down_kv(x))).view(2, length, 4, 8).transpose(1, 2)  # per-head values
        y = op.out((w @ v).transpose(1, 2).reshape(2, length, 32))
        torch.testing.assert_close(y, op(x))
