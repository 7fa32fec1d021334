import pytest
import torch

from einsearch.ops import create
from tests.ops.conv.test_checks import (
    assert_causal, assert_matches_reference, assert_step_matches_forward, linear, ref_depthwise,
)

SHAPES = [(2, 1), (2, 6), (1, 11)]


def ref_gates(ops, x, causal):
    """Spatial gate (one per position) then channel gate on the global or prefix mean, per position."""
    conv = ref_depthwise(x, ops.dwconv.weight[:, 0], ops.dwconv.bias, causal)
    x1 = x * torch.sigmoid(torch.relu(conv) @ ops.spatial.weight.T)  # (B, L, D)
    outs = []
    for t in range(x.shape[1]):
        pooled = x1[:, : t + 1].mean(1) if causal else x1.mean(1)  # (B, D)
        outs.append(x1[:, t] * torch.sigmoid(pooled @ ops.channel.weight.T))
    return torch.stack(outs, 1)


def reference(module, x):
    dim, causal = x.shape[-1], module.causal
    qkv = linear(x, module.qkv)
    q, k, v = qkv[..., :dim], qkv[..., dim:2 * dim], qkv[..., 2 * dim:]
    mixed = ref_gates(module.gate_q, q, causal) + ref_gates(module.gate_k, k, causal)
    mixed = ref_depthwise(mixed, module.dwc.weight[:, 0], module.dwc.bias, causal)
    return ref_depthwise(mixed * v, module.proj.weight[:, 0], module.proj.bias, causal)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_matches_reference(causal, kernel):
    torch.manual_seed(0)
    assert_matches_reference(create("cas_attention", 8, causal=causal, kernel=kernel), reference, 8, SHAPES)


@pytest.mark.parametrize("kernel", [3, 7])
def test_causal_and_step(kernel):
    torch.manual_seed(0)
    module = create("cas_attention", 8, causal=True, kernel=kernel)
    assert_causal(module, 8)
    assert_causal(module, 8, t=1)
    assert_step_matches_forward(module, 8, length=12)


def test_noncausal_pool_reads_the_future():
    torch.manual_seed(0)
    module = create("cas_attention", 8, causal=False)
    x = torch.randn(1, 12, 8)
    x2 = x.clone()
    x2[:, -1] += 1.0
    assert not torch.allclose(module(x)[:, 0], module(x2)[:, 0])
