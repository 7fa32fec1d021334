"""Shared check for the SSM primitive tests (no tests of its own).

Like test_rec_checks.assert_matches_loop, but a gradient that is exactly zero in the reference
(e.g. A's gradient at L = 1, where the decay multiplies the zero initial state) only has to be
zero up to rounding in the chunked form, whose decay factors cancel in exact arithmetic only.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from tests.ops.test_rec_checks import rel_err

TOL = 1e-6
ZERO_GRAD_TOL = 1e-12  # relative to the input gradient's norm


def assert_matches_loop(module: nn.Module, reference: Callable[[nn.Module, torch.Tensor], tuple],
                        dim: int, shapes: list[tuple[int, int]], seed: int = 0) -> None:
    """module.scan(x) -> (y, state) against reference(module, x) -> (y, h_final): outputs, final
    SSM state state[0], the input gradient and every parameter gradient agree in float64."""
    module = module.double()
    params = [p for p in module.parameters() if p.requires_grad]
    names = ["input"] + [n for n, p in module.named_parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(seed)
    tested = set()
    for batch, length in shapes:
        x = torch.randn(batch, length, dim, generator=gen, dtype=torch.float64, requires_grad=True)
        y, state = module.scan(x)
        y_ref, h_ref = reference(module, x)
        assert y.shape == y_ref.shape == (batch, length, dim)
        assert rel_err(y, y_ref) < TOL, f"output, shape {(batch, length)}: rel err {rel_err(y, y_ref)}"
        assert rel_err(state[0], h_ref) < TOL, f"state, shape {(batch, length)}: {rel_err(state[0], h_ref)}"
        assert torch.equal(module(x), y)
        up_y = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        up_h = torch.randn(h_ref.shape, generator=gen, dtype=h_ref.dtype)
        # <y, up_y> + <h, up_h> also checks the backward through the final state
        loss = (y * up_y).sum() + (state[0] * up_h).sum()
        loss_ref = (y_ref * up_y).sum() + (h_ref * up_h).sum()
        grads = torch.autograd.grad(loss, [x] + params, allow_unused=True)
        grads_ref = torch.autograd.grad(loss_ref, [x] + params, allow_unused=True)
        scale = grads_ref[0].norm()
        for name, wrt, g, g_ref in zip(names, [x] + params, grads, grads_ref):
            g = torch.zeros_like(wrt) if g is None else g
            g_ref = torch.zeros_like(wrt) if g_ref is None else g_ref
            if g_ref.norm() == 0:
                assert g.norm() <= ZERO_GRAD_TOL * scale, f"{name}: gradient should be zero, is {g.norm()}"
                continue
            tested.add(name)
            assert rel_err(g, g_ref) < TOL, f"grad {name}, shape {(batch, length)}: rel err {rel_err(g, g_ref)}"
    assert tested == set(names), f"never a nonzero gradient: {sorted(set(names) - tested)}"
