"""gated_deltanet against a plain step-by-step loop (float64), plus causality and decoding."""
from __future__ import annotations

import pytest
import torch

from einsearch.ops import create
from tests.ops.recurrent.test_checks import assert_causal, assert_matches_loop, assert_step_matches_forward
from tests.ops.recurrent.test_deltanet import reference

DIM = 16
SHAPES = [(2, 1), (1, 7), (2, 33), (1, 70)]


@pytest.mark.parametrize("heads,chunk", [(1, 16), (2, 32), (4, 64)])
def test_matches_loop(heads, chunk):
    torch.manual_seed(0)
    module = create("gated_deltanet", DIM, causal=True, heads=heads, chunk=chunk)
    torch.nn.init.normal_(module.norm.weight)
    with torch.no_grad():  # decays from mild to strong (a_t down to ~e^-16 per step)
        module.dt_bias.copy_(torch.linspace(-3, 1, heads))
    # A_log's gradient is zero at L = 1 (the decay multiplies the zero initial state); the chunked
    # form's decay factors cancel there in exact arithmetic only, so zero means zero up to rounding
    assert_matches_loop(module, lambda m, x: reference(m, x, gated=True), DIM, SHAPES, zero_tol=1e-12)


def test_decay_is_active():
    """The gate really decays: a_t < 1 at init (so the test above is not DeltaNet's)."""
    torch.manual_seed(0)
    module = create("gated_deltanet", DIM, causal=True, heads=2)
    log_a = module._log_decay(torch.randn(1, 5, DIM))
    assert (log_a < -1e-4).all() and torch.isfinite(log_a).all()


def test_causal():
    torch.manual_seed(0)
    assert_causal(create("gated_deltanet", DIM, causal=True, heads=2, chunk=16), DIM)


def test_step_matches_forward():
    torch.manual_seed(0)
    assert_step_matches_forward(create("gated_deltanet", DIM, causal=True, heads=2, chunk=16), DIM)
