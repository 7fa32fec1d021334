import math

import pytest
import torch

from einsearch.ops import create
from tests.ops.conv.test_checks import (
    assert_causal, assert_matches_reference, assert_step_matches_forward, linear, ref_depthwise,
)

SHAPES = [(2, 1), (2, 6), (1, 11)]


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def layer_norm(x, norm):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def reference(module, x):
    conv = ref_depthwise(x, module.dwconv.weight[:, 0], module.dwconv.bias, module.causal)
    return linear(x + layer_norm(gelu(conv), module.norm), module.pointwise)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kernel", [3, 5, 9])
def test_matches_reference(causal, kernel):
    torch.manual_seed(0)
    assert_matches_reference(create("convmixer", 8, causal=causal, kernel=kernel), reference, 8, SHAPES)


@pytest.mark.parametrize("kernel", [3, 9])
def test_causal_and_step(kernel):
    torch.manual_seed(1)
    module = create("convmixer", 8, causal=True, kernel=kernel)
    assert_causal(module, 8)
    assert_step_matches_forward(module, 8)


def test_examples_of_a_batch_do_not_interact():
    # BatchNorm would make example 0's output depend on example 1 in training mode.
    torch.manual_seed(0)
    module = create("convmixer", 8, causal=True).train()
    x = torch.randn(2, 7, 8)
    x2 = x.clone()
    x2[1] = torch.randn(7, 8)
    assert torch.equal(module(x)[0], module(x2)[0])
