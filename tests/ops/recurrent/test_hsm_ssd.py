import pytest
import torch

from einsearch.ops import create
from tests.ops.conv.test_checks import (
    assert_causal, assert_matches_reference, assert_step_matches_forward, linear, ref_depthwise,
)

SHAPES = [(2, 1), (2, 5), (1, 19), (1, 70)]  # 70 > one chunk (64)


def mixer(module, h):
    """The hidden state mixer written out: (h', z) = W_hz h; W_out(h' SiLU(z) + D h')."""
    hz = linear(h, module.hz_proj)
    hp, z = hz[..., :hz.shape[-1] // 2], hz[..., hz.shape[-1] // 2:]
    return linear(hp * z * torch.sigmoid(z) + hp * module.D, module.out_proj)


def reference(module, x):
    """A step loop: at each t, the softmax over the context's dt (prefix s <= t when causal, the
    whole sequence otherwise), the hidden state sum_s a_s B_s x_s (N x D), the mixer, C read-out."""
    n = module.state_dim
    bcdt = ref_depthwise(linear(x, module.bcdt_proj), module.conv.weight[:, 0], None, module.causal)
    B, C, dt = bcdt[..., :n], bcdt[..., n:2 * n], bcdt[..., 2 * n:]
    rows = []
    for t in range(x.shape[1]):
        end = t + 1 if module.causal else x.shape[1]
        a = torch.softmax(dt[:, :end], dim=1)  # (B, end, N), over positions
        h = torch.zeros(x.shape[0], n, x.shape[2], dtype=x.dtype)
        for s in range(end):
            h = h + (a[:, s] * B[:, s])[:, :, None] * x[:, s, None, :]
        h = mixer(module, h)  # (B, N, D)
        rows.append((h * C[:, t, :, None]).sum(1))
    return torch.stack(rows, 1)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("state_dim", [4, 8, 16])
def test_matches_step_loop(causal, state_dim):
    torch.manual_seed(0)
    assert_matches_reference(create("hsm_ssd", 8, causal=causal, state_dim=state_dim), reference, 8, SHAPES)


@pytest.mark.parametrize("state_dim", [4, 16])
def test_causal_and_step(state_dim):
    torch.manual_seed(0)
    module = create("hsm_ssd", 8, causal=True, state_dim=state_dim)
    assert_causal(module, 8)
    assert_causal(module, 8, t=0)
    assert_step_matches_forward(module, 8, length=20)


def test_causal_state_of_the_last_position_is_the_noncausal_state():
    """Given the same B and dt, the causal prefix state at the last position is the non-causal
    state, and the prefix state at t is the non-causal state of the prefix x[0..t]."""
    torch.manual_seed(0)
    module = create("hsm_ssd", 8, causal=True, state_dim=4).double()
    x = torch.randn(2, 75, 8, dtype=torch.float64)
    B, dt = torch.randn(2, 75, 4, dtype=torch.float64), 3 * torch.randn(2, 75, 4, dtype=torch.float64)
    prefix = module.prefix_states(x, B, dt)  # (B, L, N, D)
    for t in (0, 40, 74):
        whole = torch.einsum("bln,bld->bnd", dt[:, :t + 1].softmax(1) * B[:, :t + 1], x[:, :t + 1])
        assert torch.allclose(prefix[:, t], whole, atol=1e-12)


def test_float32_stays_finite_with_large_dt():
    """dt of +-200 would overflow exp(dt); the running-max rescaling keeps every factor <= 1."""
    torch.manual_seed(0)
    module = create("hsm_ssd", 8, causal=True, state_dim=4)
    x = torch.randn(2, 90, 8)
    B, dt = torch.randn(2, 90, 4), 200 * torch.randn(2, 90, 4)
    h = module.prefix_states(x, B, dt)
    assert torch.isfinite(h).all()
    ref = torch.einsum("bln,bld->bnd", dt.double().softmax(1) * B.double(), x.double())
    assert torch.allclose(h[:, -1].double(), ref, atol=1e-4)


def test_noncausal_mixes_once_per_state():
    """Non-causal: the output is C_t^T Mix(h) for one shared N x D state, so outputs lie in the
    span of the N mixed state rows: rank <= N across positions."""
    torch.manual_seed(0)
    module = create("hsm_ssd", 16, causal=False, state_dim=4).double()
    y = module(torch.randn(1, 30, 16, dtype=torch.float64))[0]  # (L, D)
    assert torch.linalg.matrix_rank(y).item() <= 4


def test_a_far_token_changes_the_first_output_when_noncausal():
    torch.manual_seed(0)
    module = create("hsm_ssd", 8, causal=False, state_dim=4)
    x = torch.randn(1, 12, 8)
    x2 = x.clone()
    x2[:, -1] += 1.0
    assert not torch.allclose(module(x)[:, 0], module(x2)[:, 0])

