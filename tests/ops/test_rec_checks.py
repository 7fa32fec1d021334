"""Shared checks for the recurrent primitive tests (no tests of its own).

Each recurrent module exposes `scan(x) -> (y, state)`; the plain step-by-step references live in
the test files and return (y, S_final) computed from the module's parameters.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

TOL = 1e-6


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp(min=1e-300)).item()


def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """x W^T + b written out (so references do not call the module's layers)."""
    y = x @ layer.weight.T
    return y if layer.bias is None else y + layer.bias


def causal_conv(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """Plain causal depthwise conv, x (B, L, C): y_t = b + sum_j w_j x_{t-k+1+j} (zeros before 0)."""
    weight = conv.weight.squeeze(1)  # (C, k)
    k = weight.shape[1]
    rows = []
    for t in range(x.shape[1]):
        acc = torch.zeros_like(x[:, 0]) if conv.bias is None else conv.bias.expand_as(x[:, 0])
        for j in range(k):
            if t - k + 1 + j >= 0:
                acc = acc + weight[:, j] * x[:, t - k + 1 + j]
        rows.append(acc)
    return torch.stack(rows, 1)


def assert_matches_loop(module: nn.Module, reference: Callable[[nn.Module, torch.Tensor], tuple],
                        dim: int, shapes: list[tuple[int, int]], seed: int = 0) -> None:
    """Outputs, final state S, input gradient and every parameter gradient agree in float64."""
    module = module.double()
    params = [p for p in module.parameters() if p.requires_grad]
    names = ["input"] + [n for n, p in module.named_parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(seed)
    tested = set()
    for batch, length in shapes:
        x = torch.randn(batch, length, dim, generator=gen, dtype=torch.float64, requires_grad=True)
        y, state = module.scan(x)
        y_ref, s_ref = reference(module, x)
        assert y.shape == y_ref.shape == (batch, length, dim)
        assert rel_err(y, y_ref) < TOL, f"output, shape {(batch, length)}: rel err {rel_err(y, y_ref)}"
        assert rel_err(state[0], s_ref) < TOL, f"state, shape {(batch, length)}: {rel_err(state[0], s_ref)}"
        assert torch.equal(module(x), y)
        upstream = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        up_state = torch.randn(s_ref.shape, generator=gen, dtype=torch.float64)
        # the gradient of <y, up> + <S, up_s> checks the state's backward too
        loss = (y * upstream).sum() + (state[0] * up_state).sum()
        loss_ref = (y_ref * upstream).sum() + (s_ref * up_state).sum()
        grads = torch.autograd.grad(loss, [x] + params, allow_unused=True)
        grads_ref = torch.autograd.grad(loss_ref, [x] + params, allow_unused=True)
        for name, wrt, g, g_ref in zip(names, [x] + params, grads, grads_ref):
            g = torch.zeros_like(wrt) if g is None else g
            g_ref = torch.zeros_like(wrt) if g_ref is None else g_ref
            if g_ref.norm() == 0:  # e.g. a gate at L = 1 multiplies the zero initial state
                assert g.norm() == 0, f"{name}: gradient should be zero"
                continue
            tested.add(name)
            assert rel_err(g, g_ref) < TOL, f"grad {name}, shape {(batch, length)}: rel err {rel_err(g, g_ref)}"
    assert tested == set(names), f"never a nonzero gradient: {sorted(set(names) - tested)}"


def assert_causal(module: nn.Module, dim: int, length: int = 41, t: int = 19, seed: int = 0) -> None:
    """Train mode: perturbing position t leaves outputs before t bit-identical and changes t onwards."""
    module.train()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, length, dim, generator=gen)
    x2 = x.clone()
    x2[:, t] += torch.randn(2, dim, generator=gen)
    with torch.no_grad():
        y, y2 = module(x), module(x2)
    assert torch.equal(y[:, :t], y2[:, :t])
    assert not torch.allclose(y[:, t:], y2[:, t:])


def assert_step_matches_forward(module: nn.Module, dim: int, length: int = 21, prefix: int = 8,
                                batch: int = 2, seed: int = 0) -> None:
    """Stepping token by token from init_state equals forward; so does scan(prefix) then steps."""
    module = module.double().eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, dim, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        y = module(x)
        state = module.init_state(batch, dtype=torch.float64)
        outs = []
        for x_t in x.unbind(1):
            y_t, state = module.step(x_t, state)
            outs.append(y_t)
        assert rel_err(torch.stack(outs, 1), y) < 1e-10
        _, full_state = module.scan(x)
        for a, b in zip(state, full_state):
            assert rel_err(a, b) < 1e-10 if a.is_floating_point() else torch.equal(a, b)
        # prefill by the chunked scan, then decode the rest
        _, state = module.scan(x[:, :prefix])
        outs = []
        for x_t in x[:, prefix:].unbind(1):
            y_t, state = module.step(x_t, state)
            outs.append(y_t)
        assert rel_err(torch.stack(outs, 1), y[:, prefix:]) < 1e-10
