import pytest
import torch

from einsearch.ops import count_params, create
from tests.ops.conv.test_checks import (
    assert_causal_fft, assert_matches_reference, assert_step_matches_forward, linear, ref_causal_conv,
    ref_depthwise, ref_implicit_filter,
)

SHAPES = [(2, 1), (2, 6), (1, 11)]


def reference(module, u):
    dim = u.shape[-1]
    xs = ref_depthwise(linear(u, module.in_proj), module.short_conv.weight[:, 0], module.short_conv.bias, True)
    x1, x2, v = xs[..., :dim], xs[..., dim:2 * dim], xs[..., 2 * dim:]
    z = x1 * v
    h = ref_implicit_filter(module.filter, u.shape[1])
    return linear(x2 * (ref_causal_conv(z, h) + module.bias * z), module.out_proj)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("width", [32, 64])
def test_matches_reference(causal, width):
    torch.manual_seed(0)
    assert_matches_reference(create("hyena", 8, causal=causal, filter_width=width), reference, 8, SHAPES)


def test_causal_and_step():
    torch.manual_seed(0)
    module = create("hyena", 8, causal=True, filter_width=32)
    assert_causal_fft(module, 8)
    assert_step_matches_forward(module, 8)


def test_impulse_at_the_end_does_not_wrap():
    torch.manual_seed(0)
    module = create("hyena", 8, causal=True).double()
    u = torch.randn(1, 10, 8, dtype=torch.float64)
    u2 = u.clone()
    u2[:, -1] += 100.0
    with torch.no_grad():
        assert (module(u2) - module(u))[:, :-1].abs().max() < 1e-10


def test_parameters_do_not_depend_on_length():
    torch.manual_seed(0)
    module = create("hyena", 8, causal=True)
    n = sum(p.numel() for p in module.parameters())
    module(torch.randn(1, 5, 8))
    module(torch.randn(1, 40, 8))
    assert sum(p.numel() for p in module.parameters()) == n == count_params("hyena", 8, True, {})
    # a prefix of a longer sequence gets the same outputs (the filter at lag l ignores L)
    x = torch.randn(1, 20, 8, dtype=torch.float64)
    module = module.double()
    assert torch.allclose(module(x[:, :7]), module(x)[:, :7], rtol=0, atol=1e-12)
