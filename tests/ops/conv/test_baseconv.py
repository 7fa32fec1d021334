import pytest
import torch

from einsearch.ops import create
from tests.ops.conv.test_checks import (
    assert_causal, assert_causal_fft, assert_matches_reference, assert_step_matches_forward, linear,
    ref_causal_conv, ref_depthwise, ref_implicit_filter,
)

SHAPES = [(2, 1), (2, 6), (1, 11)]


def reference(module, u):
    if module.kernel == "short":
        conv = ref_depthwise(u, module.conv.weight[:, 0], module.conv.bias, module.causal)
    else:
        conv = ref_causal_conv(u, ref_implicit_filter(module.filter, u.shape[1]))
    return linear(u, module.proj) * conv + u


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kernel", ["short", "long"])
def test_matches_reference(causal, kernel):
    torch.manual_seed(0)
    assert_matches_reference(create("baseconv", 8, causal=causal, kernel=kernel), reference, 8, SHAPES)


def test_causal_short_and_long():
    torch.manual_seed(0)
    assert_causal(create("baseconv", 8, causal=True, kernel="short"), 8)
    assert_causal_fft(create("baseconv", 8, causal=True, kernel="long"), 8)


@pytest.mark.parametrize("kernel", ["short", "long"])
def test_step_matches_forward(kernel):
    torch.manual_seed(0)
    assert_step_matches_forward(create("baseconv", 8, causal=True, kernel=kernel), 8)


def test_long_kernel_impulse_at_the_end_does_not_wrap():
    torch.manual_seed(0)
    module = create("baseconv", 8, causal=True, kernel="long").double()
    u = torch.randn(1, 10, 8, dtype=torch.float64)
    u2 = u.clone()
    u2[:, -1] += 100.0
    with torch.no_grad():
        diff = (module(u2) - module(u))[:, :-1].abs().max()
    assert diff < 1e-10
