"""linear_attention against a plain step-by-step loop (float64), plus causality and decoding."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from einsearch.ops import create
from tests.ops.recurrent.test_checks import (assert_causal, assert_matches_loop, assert_step_matches_forward, linear,
                                       rel_err)

DIM = 16
SHAPES = [(2, 1), (1, 7), (2, 33), (1, 70)]


def phi(x, kind):
    if kind == "elu":
        return torch.where(x > 0, x + 1, torch.exp(x))
    if kind == "relu":
        return x.clamp(min=0)
    if kind == "identity":
        return x
    d = x.shape[-1]
    x = x / d ** 0.25
    quad = [x[..., i] * x[..., j] / 2 ** 0.5 for i in range(d) for j in range(d)]
    return torch.cat([torch.ones_like(x[..., :1]), x, torch.stack(quad, -1)], -1)


def heads_of(x, h):  # (B, D') -> (B, H, d)
    return x.view(x.shape[0], h, -1)


def reference(module, x):
    """Token loop: S += phi(k) v^T, z += phi(k), o = S^T phi(q) [/ (phi(q).z + 1e-6)]."""
    h, kind = module.heads, module.feature
    outs, s, z = [], 0, 0
    for x_t in x.unbind(1):
        q = phi(heads_of(linear(x_t, module.q_proj), h), kind)
        k = phi(heads_of(linear(x_t, module.k_proj), h), kind)
        v = heads_of(linear(x_t, module.v_proj), h)
        s = s + k[..., :, None] * v[..., None, :]  # (B, H, dk, dv)
        z = z + k
        o = (s * q[..., :, None]).sum(-2)
        if module.normalize:
            o = o / ((q * z).sum(-1, keepdim=True) + 1e-6)
        outs.append(linear(o.flatten(1), module.o_proj))
    if module.normalize:  # the module carries z as the state's last value column
        s = torch.cat([s, z[..., None]], -1)
    return torch.stack(outs, 1), s


CASES = [("elu", False, 2, 16), ("elu", True, 4, 32), ("relu", True, 1, 16), ("identity", False, 2, 64),
         ("taylor", False, 2, 16), ("taylor", True, 1, 32)]


@pytest.mark.parametrize("feature,normalize,heads,chunk", CASES)
def test_matches_loop(feature, normalize, heads, chunk):
    torch.manual_seed(0)
    module = create("linear_attention", DIM, causal=True, heads=heads, feature=feature, normalize=normalize,
                    feature_dim=8, chunk=chunk)
    assert_matches_loop(module, reference, DIM, SHAPES)


@pytest.mark.parametrize("feature,normalize", [("elu", True), ("taylor", False)])
def test_noncausal_uses_global_sums(feature, normalize):
    torch.manual_seed(0)
    module = create("linear_attention", DIM, causal=False, heads=2, feature=feature, normalize=normalize,
                    feature_dim=8).double()
    x = torch.randn(2, 9, DIM, dtype=torch.float64)
    h = module.heads
    q = phi(linear(x, module.q_proj).view(2, 9, h, -1), feature)
    k = phi(linear(x, module.k_proj).view(2, 9, h, -1), feature)
    v = linear(x, module.v_proj).view(2, 9, h, -1)
    scores = torch.einsum("bihd,bjhd->bhij", q, k)  # every pair, no mask
    o = torch.einsum("bhij,bjhd->bihd", scores, v)
    if normalize:
        o = o / (scores.sum(-1).transpose(1, 2)[..., None] + 1e-6)
    assert rel_err(module(x), linear(o.flatten(2), module.o_proj)) < 1e-10


@pytest.mark.parametrize("feature", ["elu", "taylor"])
def test_causal(feature):
    torch.manual_seed(0)
    assert_causal(create("linear_attention", DIM, causal=True, feature=feature, normalize=True, chunk=16), DIM)


@pytest.mark.parametrize("feature,normalize", [("relu", True), ("taylor", False), ("identity", False)])
def test_step_matches_forward(feature, normalize):
    torch.manual_seed(0)
    module = create("linear_attention", DIM, causal=True, heads=2, feature=feature, normalize=normalize,
                    feature_dim=8, chunk=16)
    assert_step_matches_forward(module, DIM)


def test_identity_normalised_is_rejected():
    with pytest.raises(ValueError, match="normalize"):
        create("linear_attention", DIM, causal=True, feature="identity", normalize=True)


def test_elu_reference_map_is_elu_plus_one():
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    assert torch.allclose(phi(x, "elu"), F.elu(x) + 1)
