"""One test over the whole registry: a primitive is tested the moment it is registered.

For each primitive, each mode it supports and widths 32 and 64 (defaults, and one seeded random
combination of hyperparameters that `validate` accepts): forward on odd and even lengths, shapes,
finite outputs and gradients for every parameter, the parameter count of `count_params`, and, in
causal mode, that perturbing position t leaves outputs before t unchanged.
"""
from __future__ import annotations

import copy
import inspect
import itertools
import numbers
import random

import pytest
import torch
from torch import nn

from einsearch.ops import aux_loss, count_params, create, get_op, list_ops
from einsearch.ops.registry import _REGISTRY, CHANNEL_CATEGORIES, TOKEN_CATEGORIES, OpSpec, register

DIMS = (32, 64)
LENGTHS = (19, 32)  # odd, and a power of two (chunk-aligned)
BATCH = 2
MAX_ENUMERATED = 4096  # enumerate hyperparameter grids up to this size, else sample them

# (primitive, parameter name) -> why it gets no gradient from a forward pass. A parameter that
# gets none and is not listed here fails the test.
UNUSED_BY_DESIGN: dict[tuple[str, str], str] = {}


def _modes(spec: OpSpec) -> list[bool]:
    return [causal for causal, ok in ((True, spec.causal), (False, spec.noncausal)) if ok]


def _random_combo(spec: OpSpec, dim: int, rng: random.Random) -> dict | None:
    """A seeded random valid combination other than the defaults (None if there is none)."""
    default = spec.resolve({})
    keys = list(spec.hparams)
    size = 1
    for choices in spec.hparams.values():
        size *= len(choices)
    if size <= MAX_ENUMERATED:
        grid = [dict(zip(keys, values)) for values in itertools.product(*spec.hparams.values())]
    else:
        grid = [{k: rng.choice(spec.hparams[k]) for k in keys} for _ in range(MAX_ENUMERATED)]
    valid = [hp for hp in grid if hp != default and spec.check_dim(dim, hp) is None]
    return rng.choice(valid) if valid else None


def _cases() -> list:
    cases = []
    for spec in list_ops():
        for causal in _modes(spec):
            for dim in DIMS:
                mode = "causal" if causal else "noncausal"
                cases.append(pytest.param(spec.name, causal, dim, None, id=f"{spec.name}-{mode}-d{dim}-default"))
                rng = random.Random(f"{spec.name}-{mode}-{dim}")
                combo = _random_combo(spec, dim, rng)
                if combo is not None:
                    cases.append(pytest.param(spec.name, causal, dim, combo, id=f"{spec.name}-{mode}-d{dim}-random"))
    return cases


def _check_grads(name: str, module: torch.nn.Module, x: torch.Tensor) -> None:
    for pname, param in module.named_parameters():
        if not param.requires_grad:
            continue
        if param.grad is None:
            assert (name, pname) in UNUSED_BY_DESIGN, (
                f"{name}: parameter {pname} gets no gradient; fix it or justify it in UNUSED_BY_DESIGN")
            continue
        assert torch.isfinite(param.grad).all(), f"{name}: non-finite gradient for {pname}"
    assert x.grad is not None and torch.isfinite(x.grad).all(), f"{name}: bad input gradient"


def _perturbed_copy(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy with every weight moved a little, so zero-initialised gates cannot hide a leak."""
    noisy = copy.deepcopy(module)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in noisy.parameters():
            if param.is_floating_point():
                param.add_(0.02 * torch.randn(param.shape, generator=gen, dtype=param.dtype))
    return noisy


def _check_causal(spec: OpSpec, fresh: torch.nn.Module, x: torch.Tensor) -> None:
    """Perturbing position t leaves outputs before t bit-identical (within rounding for FFT forms).

    Each forward runs on its own deep copy, so stateful buffers (EMA centroids, router biases)
    are the same for both, and with the same seed (dropout-like randomness matches).
    """
    base = _perturbed_copy(fresh, seed=1).train()
    x = x.detach()
    if not spec.exact_causal:  # float64, where a rounding leak is ~1e-16 and a real one is not
        base, x = base.double(), x.double()
    length = x.shape[1]
    t = length // 2 - 1 if length % 2 else length // 2  # 8 for L=19, 16 for L=32
    x2 = x.clone()
    x2[:, t] += torch.randn(x.shape[0], x.shape[2], generator=torch.Generator().manual_seed(2), dtype=x.dtype)
    with torch.no_grad():
        torch.manual_seed(3)
        y = copy.deepcopy(base)(x)
        torch.manual_seed(3)
        y2 = copy.deepcopy(base)(x2)
    if spec.exact_causal:
        assert torch.equal(y[:, :t], y2[:, :t]), f"{spec.name}: outputs before t={t} change (L={length})"
    else:
        leak = (y[:, :t] - y2[:, :t]).abs().max() / y.abs().max()
        assert leak < 1e-10, f"{spec.name}: outputs before t={t} change by {leak:.1e} relative (L={length})"
    assert not torch.equal(y[:, t:], y2[:, t:]), f"{spec.name}: input at t={t} changes no output"


@pytest.mark.parametrize("name,causal,dim,hparams", _cases())
def test_primitive(name: str, causal: bool, dim: int, hparams: dict | None) -> None:
    spec = get_op(name)
    hp = spec.resolve(hparams or {})
    problem = spec.check_dim(dim, hp)
    if problem:  # only defaults can get here (random combos are drawn among valid ones)
        pytest.skip(f"defaults rejected at dim {dim}: {problem}")
    module = None
    for length in LENGTHS:
        if module is None or spec.needs_seq_len:
            torch.manual_seed(0)
            module = create(name, dim, causal=causal, seq_len=length, **hp).train()
            n_params = sum(p.numel() for p in module.parameters())
            assert n_params == count_params(name, dim, causal, hp, seq_len=length)
        module.zero_grad(set_to_none=True)
        fresh = copy.deepcopy(module)  # before any forward: the causality check starts from here
        x = torch.randn(BATCH, length, dim, requires_grad=True)
        torch.manual_seed(1)
        y = module(x)
        assert y.shape == (BATCH, length, dim)
        assert torch.isfinite(y).all(), f"{name}: non-finite output (L={length})"
        loss = (y * torch.randn_like(y)).sum()
        extra = aux_loss(module)
        if extra is not None:
            assert extra.ndim == 0 and torch.isfinite(extra), f"{name}: aux_loss must be a finite scalar"
            loss = loss + extra
        loss.backward()
        _check_grads(name, module, x)
        try:  # trainers copy models (best checkpoint, EMA); a stored graph must not prevent it
            copy.deepcopy(module)
        except RuntimeError as err:
            pytest.fail(f"{name}: cannot be deep-copied after a training forward ({err})"[:300])
        if causal:
            _check_causal(spec, fresh, x)


def _constructor_defaults(spec: OpSpec) -> dict:
    signature = inspect.signature(spec.cls.__init__)
    return {k: p.default for k, p in signature.parameters.items() if k not in ("self",)}


@pytest.mark.parametrize("name", [spec.name for spec in list_ops()])
def test_registration_metadata(name: str) -> None:
    spec = get_op(name)
    assert spec.category in TOKEN_CATEGORIES + CHANNEL_CATEGORIES, f"{name}: unknown category {spec.category!r}"
    assert isinstance(spec.cost, str) and spec.cost.strip(), f"{name}: empty cost"
    assert spec.causal or spec.noncausal, f"{name}: runs in no mode"
    assert spec.doc, f"{name}: class has no docstring"
    for key, choices in spec.hparams.items():
        assert 2 <= len(choices) <= 5, f"{name}: {key} has {len(choices)} choices (2-5 expected)"
        assert len(set(map(repr, choices))) == len(choices), f"{name}: {key} repeats a choice"
    for key, value in spec.defaults.items():
        assert key in spec.hparams and value in spec.hparams[key], f"{name}: default {key}={value!r}"
    # the constructor takes dim, causal and every hyperparameter, with the registered defaults
    ctor = _constructor_defaults(spec)
    assert "dim" in ctor and "causal" in ctor, f"{name}: constructor lacks dim/causal"
    assert ("seq_len" in ctor) == spec.needs_seq_len, f"{name}: seq_len argument vs needs_seq_len"
    for key, value in spec.resolve({}).items():
        assert key in ctor, f"{name}: constructor lacks hyperparameter {key}"
        assert ctor[key] == value, f"{name}: constructor default {key}={ctor[key]!r}, registered {value!r}"
    for dim, length in itertools.product(DIMS, LENGTHS):
        hp = spec.resolve({})
        state = spec.state(dim, length, hp)
        assert isinstance(state, numbers.Integral) and not isinstance(state, bool) and state >= 0, (
            f"{name}: state_size({dim}, {length}) = {state!r}, expected a non-negative int")
        flops = spec.extra_flops(dim, length, hp)
        assert isinstance(flops, numbers.Real) and flops >= 0, f"{name}: seq_flops = {flops!r}"


@pytest.mark.parametrize("name", sorted(s.name for s in list_ops() if s.causal))
def test_a_causal_mixer_that_carries_the_past_forward_declares_a_decoding_state(name):
    """An earlier input that moves a later output must be held while decoding, so the registered
    state size is positive; a per-token primitive may declare none. Measured, not listed by hand."""
    spec, dim, length = get_op(name), 32, 16
    torch.manual_seed(0)
    module = create(name, dim, causal=True, seq_len=length).eval()
    x = torch.randn(2, length, dim)
    moved = x.clone()
    moved[:, 0] += 1.0
    with torch.no_grad():
        carries_past = not torch.allclose(module(x)[:, 1:], module(moved)[:, 1:], atol=1e-6)
    if carries_past:
        assert spec.state(dim, length, spec.resolve({})) > 0, f"{name} mixes positions but declares no state"


def test_register_refuses_an_unknown_category():
    with pytest.raises(ValueError, match="unknown category 'mlp'"):
        register("no_such_op", category="mlp")


def test_register_reads_defaults_from_the_constructor():
    class Mixer(nn.Module):
        """A stand-in."""

        def __init__(self, dim: int, causal: bool = True, heads: int = 2):
            super().__init__()

    spec_cls = register("signature_default_probe", category="attention", hparams={"heads": (1, 2, 4)})(Mixer)
    try:
        assert get_op("signature_default_probe").defaults == {"heads": 2}
        assert spec_cls is Mixer
    finally:
        _REGISTRY.pop("signature_default_probe")


@pytest.mark.parametrize("signature, message", [
    ("def __init__(self, dim, causal=True, heads=3): super().__init__()", "default heads=3 is not among"),
    ("def __init__(self, dim, causal=True, heads=None): super().__init__()", "default heads=None is not among"),
    ("def __init__(self, dim, heads, causal=True): super().__init__()", "needs a default"),
    ("def __init__(self, dim, causal=True): super().__init__()", "needs a default"),
])
def test_register_refuses_a_missing_default_or_one_outside_the_choices(signature, message):
    namespace: dict = {}
    exec(f"class Mixer(nn.Module):\n    '''Probe.'''\n    {signature}\n", {"nn": nn}, namespace)
    with pytest.raises(ValueError, match=message):
        register("bad_default_probe", category="attention", hparams={"heads": (1, 2, 4)})(namespace["Mixer"])
    assert "bad_default_probe" not in _REGISTRY
