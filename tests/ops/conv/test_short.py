import pytest
import torch

from einsearch.ops import create
from tests.ops.conv.test_checks import (
    assert_causal, assert_matches_reference, assert_step_matches_forward, ref_depthwise,
)

SHAPES = [(2, 1), (2, 7), (1, 12)]


def reference(module, x):
    conv = module.conv.conv
    return ref_depthwise(x, conv.weight[:, 0], conv.bias, module.causal)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kernel", [3, 4, 7])
def test_matches_plain_convolution(causal, kernel):
    torch.manual_seed(0)
    assert_matches_reference(create("short_conv", 8, causal=causal, kernel=kernel), reference, 8, SHAPES)


@pytest.mark.parametrize("kernel", [3, 4, 7])
def test_causal_and_step(kernel):
    torch.manual_seed(0)
    module = create("short_conv", 8, causal=True, kernel=kernel)
    assert_causal(module, 8)
    assert_step_matches_forward(module, 8)


def test_noncausal_sees_the_next_position():
    torch.manual_seed(0)
    module = create("short_conv", 8, causal=False, kernel=3)
    x = torch.zeros(1, 5, 8)
    x[:, 3] = 1.0
    y = module(x) - module.conv.conv.bias
    assert y[:, 2].abs().sum() > 0 and y[:, 1].abs().sum() == 0
