import torch

from einsearch.ops.conv.common import ImplicitFilter, fft_causal_conv, long_conv_step
from tests.ops.conv.test_checks import ref_causal_conv, ref_implicit_filter, rel_err


def test_fft_conv_equals_direct_convolution():
    gen = torch.Generator().manual_seed(0)
    for length in (1, 2, 7, 16):
        u = torch.randn(2, 3, length, generator=gen, dtype=torch.float64)
        k = torch.randn(3, length, generator=gen, dtype=torch.float64)
        y = fft_causal_conv(u, k)
        assert rel_err(y, ref_causal_conv(u.transpose(1, 2), k).transpose(1, 2)) < 1e-12


def test_fft_conv_has_no_circular_wrap():
    # An impulse at the last position must not reach earlier outputs; a length-L circular
    # convolution would put kernel[1] * impulse at position 0.
    length = 9
    u = torch.zeros(1, 2, length, dtype=torch.float64)
    u[..., -1] = 1.0
    k = torch.randn(2, length, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = fft_causal_conv(u, k)
    assert y[..., :-1].abs().max() < 1e-12
    assert torch.allclose(y[..., -1], k[:, 0])


def test_implicit_filter_matches_plain_formula_and_ignores_length():
    torch.manual_seed(0)
    filt = ImplicitFilter(6, width=8, emb_dim=5, layers=3).double()
    h = filt(13)
    assert rel_err(h, ref_implicit_filter(filt, 13)) < 1e-12
    # lag l has the same value whatever the length (parameters do not depend on L)
    assert torch.allclose(filt(5), h[:, :5], rtol=0, atol=1e-14)


def test_long_conv_step_accumulates_history():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64)
    k = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    history = torch.zeros(2, 3, 0, dtype=torch.float64)
    outs = []
    for t, x_t in enumerate(x.unbind(1)):
        y_t, history = long_conv_step(k[:, : t + 1], x_t, history)
        outs.append(y_t)
    assert rel_err(torch.stack(outs, 1), ref_causal_conv(x, k)) < 1e-12
