import pytest
import torch
import torch.nn.functional as F

from einsearch.ops import create
from tests.ops.conv.test_checks import (
    assert_causal, assert_matches_reference, assert_step_matches_forward, linear, ref_depthwise,
)
from tests.ops.conv.test_convmixer import gelu

SHAPES = [(2, 1), (2, 6), (1, 13)]


def reference(module, x):
    """Plain loops: per-head direct convolutions, then for every group j (channel j of each head)
    an explicit weighted sum over the heads, GELU, the output map, times v, proj."""
    heads, hd, e = module.heads, module.head_dim, module.expand
    v, s = linear(x, module.v), linear(x, module.s)
    conv_out = []
    for i, conv in enumerate(module.convs):
        assert conv.kernel_size[0] == 3 + 2 * i
        conv_out.append(ref_depthwise(s[..., i * hd:(i + 1) * hd], conv.weight[:, 0], conv.bias, module.causal))
    columns = []
    for j in range(hd):
        for p in range(e * heads):
            acc = module.agg_bias[j, p].expand(x.shape[:2])
            for i in range(heads):
                acc = acc + module.agg_weight[j, p, i] * conv_out[i][..., j]
            columns.append(acc)
    agg = linear(gelu(torch.stack(columns, -1)), module.agg_out)
    return linear(agg * v, module.proj)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("heads,expand", [(2, 1), (2, 2), (4, 1), (4, 2)])
def test_matches_reference(causal, heads, expand):
    torch.manual_seed(0)
    module = create("smt", 8, causal=causal, heads=heads, expand=expand)
    assert_matches_reference(module, reference, 8, SHAPES)


def test_aggregation_matches_the_official_channel_layout():
    """SMT regroups the heads' outputs with reshape(B, D/heads, 1, L) per head, concatenated on
    dim 2, then a Conv with groups=D/heads: the grouped map here must be that convolution."""
    torch.manual_seed(0)
    module = create("smt", 8, causal=False, heads=4, expand=2).double()
    x = torch.randn(2, 9, 8, dtype=torch.float64)
    s = linear(x, module.s).transpose(1, 2)  # (B, D, L)
    parts = [conv(F.pad(s_i, (conv.kernel_size[0] // 2,) * 2)).reshape(2, module.head_dim, 1, 9)
             for conv, s_i in zip(module.convs, s.split(module.head_dim, dim=1))]
    s_out = torch.cat(parts, dim=2).reshape(2, 8, 9)
    weight = module.agg_weight.reshape(-1, module.heads, 1)  # (D*expand, heads, 1)
    agg = F.conv1d(s_out, weight, module.agg_bias.reshape(-1), groups=module.head_dim).transpose(1, 2)
    expected = linear(linear(gelu(agg), module.agg_out) * linear(x, module.v), module.proj)
    assert torch.allclose(module(x), expected, atol=1e-12)


@pytest.mark.parametrize("heads", [2, 4])
def test_causal_and_step(heads):
    torch.manual_seed(0)
    module = create("smt", 8, causal=True, heads=heads)
    assert_causal(module, 8)
    assert_causal(module, 8, t=0)
    assert_step_matches_forward(module, 8, length=12)


def test_receptive_field_is_the_largest_kernel():
    """Causal, 4 heads: kernels 3..9, so output t reads inputs t-8..t and nothing older."""
    torch.manual_seed(0)
    module = create("smt", 8, causal=True, heads=4).double()
    x = torch.randn(1, 14, 8, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 2] += 1.0
    y, y2 = module(x), module(x2)
    assert not torch.allclose(y[:, 10], y2[:, 10]) and torch.equal(y[:, 11], y2[:, 11])


def test_rejects_heads_not_dividing_dim():
    with pytest.raises(ValueError):
        create("smt", 10, causal=True, heads=4)
