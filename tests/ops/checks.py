"""Checks shared by every primitive's tests: a module against a plain float64 reference (outputs,
final state, input and parameter gradients), causality, and step-by-step decoding.

Family helpers and references live in test_{attn,conv,rec,ssm}_checks.py, which re-export these.
"""
from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
from torch import nn

TOL = 1e-6


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp(min=1e-300)).item()


def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """x W^T + b written out (so references do not call the module's layers)."""
    y = x @ layer.weight.T
    return y if layer.bias is None else y + layer.bias


def _assert_grads_agree(names: Sequence[str], wrts: Sequence[torch.Tensor], grads: Sequence, grads_ref: Sequence,
                        where: str, zero_tol: float) -> set[str]:
    """Each gradient agrees with the reference's to TOL. Where the reference's is zero (norm at most
    zero_tol times the input gradient's), the module's must be too. Returns the names checked nonzero."""
    scale = zero_tol * (grads_ref[0].norm() if grads_ref[0] is not None else 0)
    checked = set()
    for name, wrt, g, g_ref in zip(names, wrts, grads, grads_ref):
        g = torch.zeros_like(wrt) if g is None else g  # no gradient: the output does not depend on it
        g_ref = torch.zeros_like(wrt) if g_ref is None else g_ref
        if g_ref.norm() <= scale:
            assert g.norm() <= scale, f"{name}: gradient should be zero, norm {g.norm().item()}"
            continue
        checked.add(name)
        assert rel_err(g, g_ref) < TOL, f"grad {name}, {where}: rel err {rel_err(g, g_ref)}"
    return checked


def assert_matches_reference(module: nn.Module, reference: Callable[[nn.Module, torch.Tensor], torch.Tensor],
                             dim: int, shapes: Sequence[tuple[int, int]] = ((2, 1), (2, 7), (1, 13)),
                             seed: int = 0, zero_tol: float = 1e-12) -> None:
    """forward(x) against reference(module, x): outputs, input gradient and every parameter gradient
    agree in float64 on random inputs of each (batch, length)."""
    module = module.double()
    names = ["input"] + [n for n, p in module.named_parameters() if p.requires_grad]
    params = [p for p in module.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(seed)
    for batch, length in shapes:
        x = torch.randn(batch, length, dim, generator=gen, dtype=torch.float64, requires_grad=True)
        y, y_ref = module(x), reference(module, x)
        assert y.shape == y_ref.shape == (batch, length, dim)
        assert rel_err(y, y_ref) < TOL, f"output, shape {(batch, length)}: rel err {rel_err(y, y_ref)}"
        upstream = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        grads = torch.autograd.grad(y, [x] + params, upstream, allow_unused=True)
        grads_ref = torch.autograd.grad(y_ref, [x] + params, upstream, allow_unused=True)
        _assert_grads_agree(names, [x] + params, grads, grads_ref, f"shape {(batch, length)}", zero_tol)


def assert_matches_loop(module: nn.Module, reference: Callable[[nn.Module, torch.Tensor], tuple],
                        dim: int, shapes: Sequence[tuple[int, int]], seed: int = 0, zero_tol: float = 0.0) -> None:
    """module.scan(x) -> (y, state) against a step-by-step reference(module, x) -> (y, S_final): outputs,
    the final state state[0], the input gradient and every parameter gradient (through both) agree in
    float64, and every parameter gets a nonzero gradient at some shape."""
    module = module.double()
    params = [p for p in module.parameters() if p.requires_grad]
    names = ["input"] + [n for n, p in module.named_parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(seed)
    tested: set[str] = set()
    for batch, length in shapes:
        x = torch.randn(batch, length, dim, generator=gen, dtype=torch.float64, requires_grad=True)
        y, state = module.scan(x)
        y_ref, s_ref = reference(module, x)
        assert y.shape == y_ref.shape == (batch, length, dim)
        assert rel_err(y, y_ref) < TOL, f"output, shape {(batch, length)}: rel err {rel_err(y, y_ref)}"
        assert rel_err(state[0], s_ref) < TOL, f"state, shape {(batch, length)}: {rel_err(state[0], s_ref)}"
        assert torch.equal(module(x), y)
        upstream = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        up_state = torch.randn(s_ref.shape, generator=gen, dtype=s_ref.dtype)
        # the gradient of <y, up> + <S, up_s> checks the state's backward too
        loss = (y * upstream).sum() + (state[0] * up_state).sum()
        loss_ref = (y_ref * upstream).sum() + (s_ref * up_state).sum()
        grads = torch.autograd.grad(loss, [x] + params, allow_unused=True)
        grads_ref = torch.autograd.grad(loss_ref, [x] + params, allow_unused=True)
        tested |= _assert_grads_agree(names, [x] + params, grads, grads_ref, f"shape {(batch, length)}", zero_tol)
    assert tested == set(names), f"never a nonzero gradient: {sorted(set(names) - tested)}"


def perturbed_outputs(module: nn.Module, dim: int, length: int, t: int, seed: int = 0):
    """Train-mode outputs for a random input and for it changed at position t. Two deep copies run the
    two inputs, so stateful training forwards (EMA buffers) start equal."""
    module.train()
    gen = torch.Generator().manual_seed(seed)
    dtype = next(module.parameters()).dtype
    x = torch.randn(2, length, dim, generator=gen, dtype=dtype)
    x2 = x.clone()
    x2[:, t] += torch.randn(2, dim, generator=gen, dtype=dtype)
    with torch.no_grad():
        return copy.deepcopy(module)(x), copy.deepcopy(module)(x2)


def assert_per_token(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, t: int, scale: float) -> None:
    """Perturbing position t of x (B, L, D) by scale * randn changes run's output at t and nowhere
    else, bit for bit."""
    y = run(x)
    x2 = x.clone()
    x2[:, t] += scale * torch.randn(x.shape[-1], dtype=x.dtype)
    y2 = run(x2)
    assert torch.equal(y[:, :t], y2[:, :t]) and torch.equal(y[:, t + 1:], y2[:, t + 1:])
    assert not torch.equal(y[:, t], y2[:, t])


def assert_causal(module: nn.Module, dim: int, length: int = 11, t: int = 6, seed: int = 0) -> None:
    """Perturbing position t leaves outputs before t bit-identical and changes outputs from t on."""
    y, y2 = perturbed_outputs(module, dim, length, t, seed)
    assert torch.equal(y[:, :t], y2[:, :t])
    assert not torch.allclose(y[:, t:], y2[:, t:])


def assert_causal_fft(module: nn.Module, dim: int, length: int = 11, t: int = 6) -> None:
    """Causality for FFT convolutions, which are causal up to rounding only: in float64, outputs
    before t move by less than 1e-12 of the change at and after t (a leak would be O(1))."""
    y, y2 = perturbed_outputs(module.double(), dim, length, t)
    before = (y[:, :t] - y2[:, :t]).abs().max()
    after = (y[:, t:] - y2[:, t:]).abs().max()
    assert after > 1e-3
    assert before <= 1e-12 * after, f"leak before t: {before.item()} vs {after.item()}"


def decode(module: nn.Module, x: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
    """Run module.step over x (B, L, D) token by token from `state` (default init_state): (y, state)."""
    state = module.init_state(x.shape[0], dtype=x.dtype) if state is None else state
    outs = []
    for x_t in x.unbind(1):
        y_t, state = module.step(x_t, state)
        outs.append(y_t)
    return torch.stack(outs, 1), state


def assert_step_matches_forward(module: nn.Module, dim: int, length: int = 9, batch: int = 2, seed: int = 0,
                                prefix: int | None = None) -> None:
    """Decoding token by token equals the causal forward (float64, eval). With `prefix` (modules with
    scan): the decoded state equals scan's final state, and prefill by scan then decoding works too."""
    module = module.double().eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, dim, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        y = module(x)
        decoded, state = decode(module, x)
        assert rel_err(decoded, y) < 1e-10
        if prefix is None:
            return
        _, full_state = module.scan(x)
        for a, b in zip(state, full_state):
            assert rel_err(a, b) < 1e-10 if a.is_floating_point() else torch.equal(a, b)
        _, state = module.scan(x[:, :prefix])
        assert rel_err(decode(module, x[:, prefix:], state)[0], y[:, prefix:]) < 1e-10
