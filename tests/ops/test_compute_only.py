"""Compute-only hyperparameters (a scan's chunk size) must not change what a primitive computes:
search skips them on that promise (einsearch/grammar/sampler.py, mutate.py), so each one is checked
here on every primitive that declares it, with the same weights, in float64, on lengths that span
several chunks and end mid-chunk."""
from __future__ import annotations

import pytest
import torch

from einsearch.ops import create, get_op, list_ops
from einsearch.ops.registry import register

from tests.ops.checks import rel_err

DIM, LENGTH, BATCH = 32, 70, 2


def _cases() -> list:
    return [pytest.param(spec.name, key, causal, id=f"{spec.name}-{key}-{'causal' if causal else 'noncausal'}")
            for spec in list_ops() for key in spec.compute_only
            for causal, ok in ((True, spec.causal), (False, spec.noncausal)) if ok]


def test_the_scans_declare_their_chunk_compute_only():
    names = {p.values[0] for p in _cases()}
    assert {"deltanet", "gated_deltanet", "gla", "retnet", "hgrn2", "mamba", "mamba2", "linear_attention"} <= names


@pytest.mark.parametrize("name,key,causal", _cases())
def test_a_compute_only_hyperparameter_leaves_outputs_and_gradients_unchanged(name, key, causal, backend):
    spec = get_op(name)
    torch.manual_seed(0)
    reference = create(name, DIM, causal=causal).double()
    x = torch.randn(BATCH, LENGTH, DIM, dtype=torch.float64, requires_grad=True)
    y_ref = reference(x)
    (g_ref,) = torch.autograd.grad(y_ref.square().sum(), x)
    for value in spec.hparams[key]:
        variant = create(name, DIM, causal=causal, **{key: value}).double()
        variant.load_state_dict(reference.state_dict())  # same parameters: a compute-only knob adds none
        y = variant(x)
        (g,) = torch.autograd.grad(y.square().sum(), x)
        assert rel_err(y, y_ref) < 1e-9, f"{name} {key}={value}: outputs differ ({rel_err(y, y_ref):.2e})"
        assert rel_err(g, g_ref) < 1e-9, f"{name} {key}={value}: gradients differ ({rel_err(g, g_ref):.2e})"


def test_registering_an_unknown_compute_only_name_is_refused():
    class Knobless(torch.nn.Module):
        def __init__(self, dim: int, causal: bool = True, heads: int = 1):
            super().__init__()

    with pytest.raises(ValueError, match="compute_only"):
        register("no_such_knob_op", category="recurrent", hparams={"heads": (1, 2)}, compute_only=("chunk",))(Knobless)
    assert "no_such_knob_op" not in {s.name for s in list_ops()}
