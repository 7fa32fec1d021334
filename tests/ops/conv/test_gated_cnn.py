import pytest
import torch

from einsearch.ops import create
from tests.ops.conv.test_checks import (
    assert_causal, assert_matches_reference, assert_step_matches_forward, linear, ref_depthwise,
)
from tests.ops.conv.test_convmixer import gelu

SHAPES = [(2, 1), (2, 6), (1, 11)]


def reference(module, x):
    """fc1, split (gate, value); direct loop conv on the value's last C channels; GELU(gate) * value; fc2."""
    hidden, conv_ch = module.hidden, module.conv_channels
    h = linear(x, module.fc1)
    g, value = h[..., :hidden], h[..., hidden:]
    rest, c = value[..., :hidden - conv_ch], value[..., hidden - conv_ch:]
    c = ref_depthwise(c, module.conv.weight[:, 0], module.conv.bias, module.causal)
    return linear(gelu(g) * torch.cat([rest, c], dim=-1), module.fc2)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kernel,expansion,conv_ratio", [(3, 1, 1.0), (4, 2, 0.5), (7, 3, 0.25), (7, 2, 1.0)])
def test_matches_reference(causal, kernel, expansion, conv_ratio):
    torch.manual_seed(0)
    module = create("gated_cnn", 8, causal=causal, kernel=kernel, expansion=expansion, conv_ratio=conv_ratio)
    assert_matches_reference(module, reference, 8, SHAPES)


@pytest.mark.parametrize("kernel,conv_ratio", [(3, 1.0), (4, 0.5), (7, 0.25)])
def test_causal_and_step(kernel, conv_ratio):
    torch.manual_seed(0)
    module = create("gated_cnn", 8, causal=True, kernel=kernel, conv_ratio=conv_ratio)
    assert_causal(module, 8)
    assert_causal(module, 8, t=0)
    assert_step_matches_forward(module, 8, length=12)


def test_kernel_one_tap_is_a_gated_mlp():
    """With the conv reduced to its current-position tap (identity), the block is the GLU
    fc2(GELU(g) * v): a per-token channel mixer, no information moves across positions."""
    torch.manual_seed(0)
    module = create("gated_cnn", 8, causal=True, kernel=3).double()
    with torch.no_grad():
        module.conv.weight.zero_()
        module.conv.weight[:, 0, -1] = 1.0
        module.conv.bias.zero_()
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    h = linear(x, module.fc1)
    expected = linear(gelu(h[..., :module.hidden]) * h[..., module.hidden:], module.fc2)
    assert torch.allclose(module(x), expected, atol=1e-12)


def test_noncausal_reads_the_next_position():
    torch.manual_seed(0)
    module = create("gated_cnn", 8, causal=False, kernel=3)
    x = torch.randn(1, 6, 8)
    x2 = x.clone()
    x2[:, 3] += 1.0
    y, y2 = module(x), module(x2)
    assert not torch.allclose(y[:, 2], y2[:, 2]) and torch.equal(y[:, 1], y2[:, 1])


def test_rejects_bad_conv_ratio():
    with pytest.raises(ValueError):
        create("gated_cnn", 2, causal=True, conv_ratio=0.25)
