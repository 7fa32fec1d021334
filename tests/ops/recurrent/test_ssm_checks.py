"""Shared check for the SSM primitive tests (no tests of its own).

Like test_rec_checks.assert_matches_loop, but a gradient that is exactly zero in the reference
(e.g. A's gradient at L = 1, where the decay multiplies the zero initial state) only has to be
zero up to rounding in the chunked form, whose decay factors cancel in exact arithmetic only.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from tests.ops import checks

ZERO_GRAD_TOL = 1e-12  # relative to the input gradient's norm


def assert_matches_loop(module: nn.Module, reference: Callable[[nn.Module, torch.Tensor], tuple],
                        dim: int, shapes: list[tuple[int, int]], seed: int = 0) -> None:
    checks.assert_matches_loop(module, reference, dim, shapes, seed, zero_tol=ZERO_GRAD_TOL)
