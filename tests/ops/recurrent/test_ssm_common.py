import pytest
import torch
import torch.nn.functional as F
from torch import nn

from einsearch.ops.recurrent.ssm_common import conv_with_window, dt_bias_init
from tests.ops.recurrent.test_checks import causal_conv


@pytest.mark.parametrize("silu", [False, True])
def test_conv_continues_from_its_window(backend, silu):
    """Convolving a sequence in two pieces, the second starting from the first's window, equals the
    plain causal conv of the whole (SiLU of it with silu); the window is the last k-1 inputs
    (zero-padded when fewer)."""
    torch.manual_seed(0)
    conv = nn.Conv1d(5, 5, 4, groups=5).double()
    x = torch.randn(2, 9, 5, dtype=torch.float64)
    act = F.silu if silu else (lambda y: y)
    with torch.no_grad():
        first, window = conv_with_window(conv, x[:, :2], None, silu=silu)
        assert torch.equal(window[..., 0], torch.zeros(2, 5, dtype=torch.float64))
        assert torch.equal(window[..., 1:], x[:, :2].transpose(1, 2))
        second, window = conv_with_window(conv, x[:, 2:], window, silu=silu)
        assert torch.allclose(torch.cat([first, second], 1), act(causal_conv(x, conv)), rtol=0, atol=1e-12)
        assert torch.equal(window, x[:, -3:].transpose(1, 2))


def test_dt_bias_gives_dt_in_the_published_range():
    torch.manual_seed(0)
    dt = F.softplus(dt_bias_init(1000).double())
    assert dt.min() >= 1e-3 * (1 - 1e-6) and dt.max() <= 1e-1 * (1 + 1e-6)
    # log-uniform: about half of the draws lie below the geometric mean 1e-2
    assert 0.4 < (dt < 1e-2).double().mean() < 0.6
