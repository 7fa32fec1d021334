"""The primitive registry: every mixer is created by name (timm-style).

Adding a primitive is one file with one decorator:

    @register("my_mixer", category="attention", cost="L^2", hparams={"heads": (1, 2, 4, 8)},
              validate=lambda dim, hp: None if dim % hp["heads"] == 0 else "heads must divide the width")
    class MyMixer(nn.Module):
        def __init__(self, dim: int, causal: bool = False, heads: int = 4): ...
        def forward(self, x):  # (B, L, D) -> (B, L, D)

The grammar reads the hyperparameter choices from here; no second list exists. A hyperparameter's
default is the constructor's; `validate` states which widths and combinations work, once: the
sampler and the checker skip what it rejects, and `create` refuses it with its message. A
hyperparameter that changes how the output is computed but not what it is (a scan's chunk size) is
declared `compute_only`: search keeps its default, and tests/ops/test_compute_only.py holds it to that.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from einsearch.ops.info import CATEGORIES, CHANNEL_CATEGORIES, TOKEN_CATEGORIES, OpInfo  # noqa: F401 (re-export)
from einsearch.ops.context import CONTEXT_KINDS
from einsearch.plugins import import_submodules


@dataclass(frozen=True, kw_only=True)
class OpSpec(OpInfo):
    """A primitive as the registry holds it: its static `OpInfo` plus its class and size formulas,
    what the grammar, the checker, search and export need to build and cost it."""

    cls: type[nn.Module]
    # decoding state per layer, in numbers, given (dim, seq_len, hparams); 0 for stateless.
    state_size: Callable[[int, int, dict], int] | None = None
    # extra FLOPs per token that do not come from weights (e.g. attention's L-dependent term).
    seq_flops: Callable[[int, int, dict], int] | None = None
    # weights one token actually uses, given (dim, hparams), for routed primitives (MoE: the router
    # and top_k of E experts); FLOPs count 2 per used weight. None: every weight (params stay all).
    active_params: Callable[[int, dict], int] | None = None
    # dims the primitive accepts: a predicate on (dim, hparams) -> error text or None.
    validate: Callable[[int, dict], str | None] | None = None

    def check_dim(self, dim: int, hparams: dict[str, Any]) -> str | None:
        return self.validate(dim, hparams) if self.validate else None

    def state(self, dim: int, seq_len: int, hparams: dict[str, Any]) -> int:
        return self.state_size(dim, seq_len, hparams) if self.state_size else 0

    def active(self, dim: int, hparams: dict[str, Any], params: int) -> int:
        """Weights a token uses: `active_params` if registered, else all `params`."""
        return self.active_params(dim, hparams) if self.active_params else params

    def extra_flops(self, dim: int, seq_len: int, hparams: dict[str, Any]) -> int:
        return self.seq_flops(dim, seq_len, hparams) if self.seq_flops else 0


_REGISTRY: dict[str, OpSpec] = {}
_LOADED = False


def register(
    name: str,
    *,
    category: str,
    cost: str = "L",
    hparams: dict[str, tuple] | None = None,
    causal: bool = True,
    noncausal: bool = True,
    state_size: Callable[[int, int, dict], int] | None = None,
    seq_flops: Callable[[int, int, dict], int] | None = None,
    active_params: Callable[[int, dict], int] | None = None,
    validate: Callable[[int, dict], str | None] | None = None,
    needs_seq_len: bool = False,
    exact_causal: bool = True,
    needs_context: tuple[str, ...] = (),
    compute_only: tuple[str, ...] = (),
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that adds a primitive to the registry under `name`."""
    if category not in CATEGORIES:
        raise ValueError(f"{name}: unknown category {category!r} (one of {', '.join(CATEGORIES)})")

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"primitive {name!r} is registered twice")
        hp = {k: tuple(v) for k, v in (hparams or {}).items()}
        dflt = _signature_defaults(name, cls, hp)
        needs = tuple(needs_context)
        if set(needs) - set(CONTEXT_KINDS) or tuple(getattr(cls, "context_needs", ())) != needs:
            raise ValueError(f"{name}: needs_context={needs!r} must be among {CONTEXT_KINDS} and equal "
                             f"the class's context_needs (a ContextConsumer)")
        if set(compute_only) - set(hp):
            raise ValueError(f"{name}: compute_only={tuple(compute_only)!r} names no hyperparameter of it")
        _REGISTRY[name] = OpSpec(
            name=name, cls=cls, category=category, cost=cost, hparams=hp, defaults=dflt,
            causal=causal, noncausal=noncausal, state_size=state_size, seq_flops=seq_flops,
            active_params=active_params, validate=validate, needs_seq_len=needs_seq_len, needs_context=needs,
            exact_causal=exact_causal, compute_only=tuple(compute_only), doc=(cls.__doc__ or "").strip().split("\n")[0],
        )
        cls.op_name = name
        if validate is not None:
            cls.__init__ = _validating_init(name, cls.__init__, tuple(hp), validate)
        return cls

    return wrap


def _signature_defaults(name: str, cls: type[nn.Module], hparams: dict[str, tuple]) -> dict[str, Any]:
    """Each hyperparameter's default, read from the constructor; it must be one of the choices."""
    params = inspect.signature(cls.__init__).parameters
    defaults = {}
    for key, choices in hparams.items():
        default = params[key].default if key in params else inspect.Parameter.empty
        if default is inspect.Parameter.empty:
            raise ValueError(f"{name}: hyperparameter {key!r} needs a default in {cls.__name__}.__init__")
        if default not in choices:
            raise ValueError(f"{name}: default {key}={default!r} is not among its choices {list(choices)}")
        defaults[key] = default
    return defaults


def _validating_init(name: str, init: Callable, hparams: tuple[str, ...],
                     validate: Callable[[int, dict], str | None]) -> Callable:
    """The constructor, preceded by the registered `validate`: a primitive built directly (not through
    `create`) is refused with the same message, so no constructor repeats the check."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        problem = validate(bound.arguments["dim"], {k: bound.arguments[k] for k in hparams})
        if problem:
            raise ValueError(f"{name}: {problem}")
        init(self, *args, **kwargs)

    return __init__


def _load_all() -> None:
    """Import every module of einsearch.ops so that their decorators run."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        import_submodules("einsearch.ops")


def is_active() -> bool:
    """Whether this process has registered primitives (then the catalogue defers to the registry)."""
    return _LOADED or bool(_REGISTRY)


def list_ops(category: str | None = None) -> list[OpSpec]:
    """All registered primitives (optionally one category), sorted by name."""
    _load_all()
    specs = sorted(_REGISTRY.values(), key=lambda s: s.name)
    return [s for s in specs if category is None or s.category == category]


def get_op(name: str) -> OpSpec:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown primitive {name!r}") from None


def create(name: str, dim: int, causal: bool = False, seq_len: int | None = None, **hparams: Any) -> nn.Module:
    """Build primitive `name` for width `dim`; hyperparameters not given take their defaults.

    `seq_len` is passed on only to primitives registered with needs_seq_len=True.
    """
    spec = get_op(name)
    if causal and not spec.causal:
        raise ValueError(f"{name} cannot run in causal mode")
    if not causal and not spec.noncausal:
        raise ValueError(f"{name} runs in causal mode only")
    hp = spec.resolve(hparams)
    problem = spec.check_dim(dim, hp)
    if problem:
        raise ValueError(f"{name}: {problem}")
    if spec.needs_seq_len:
        if seq_len is None:
            raise ValueError(f"{name} needs the sequence length")
        return spec.cls(dim=dim, causal=causal, seq_len=seq_len, **hp)
    return spec.cls(dim=dim, causal=causal, **hp)


class _SkipInit(torch.overrides.TorchFunctionMode):
    """Skips the in-place random initialisers: on the meta device the first of them imports torch's
    reference decompositions (seconds), and their values are never read when counting."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if getattr(func, "__name__", "") in _INITIALISERS:  # nn.init passes the tensor by keyword
            target = args[0] if args else (kwargs or {}).get("tensor")
            if isinstance(target, torch.Tensor):
                return target
        return func(*args, **(kwargs or {}))


_INITIALISERS = frozenset({"normal_", "uniform_", "trunc_normal_", "exponential_", "bernoulli_", "random_",
                           "log_normal_", "cauchy_", "geometric_", "orthogonal_"})


def count_module_params(make: Callable[[], nn.Module]) -> int:
    """Parameters of the module `make()` builds, built on the meta device (nothing allocated)."""
    with torch.device("meta"), _SkipInit():
        module = make()
    return sum(p.numel() for p in module.parameters())


@functools.lru_cache(maxsize=65536)
def _count_params(name: str, dim: int, causal: bool, seq_len: int | None, hp_items: tuple) -> int:
    from einsearch.ops import param_cache

    stored = get_op(name).cls.__module__.startswith("einsearch.ops.")  # a plugin's code is not fingerprinted
    key = f"{name}|{dim}|{int(causal)}|{seq_len}|{hp_items!r}"
    count = param_cache.lookup(key) if stored else None
    if count is None:
        count = count_module_params(lambda: create(name, dim, causal=causal, seq_len=seq_len, **dict(hp_items)))
        if stored:
            param_cache.remember(key, count)
    return count


def count_params(name: str, dim: int, causal: bool, hparams: dict[str, Any], seq_len: int | None = None) -> int:
    """Exact parameter count of a primitive (cached)."""
    spec = get_op(name)
    return _count_params(name, dim, causal, seq_len if spec.needs_seq_len else None,
                         tuple(spec.resolve(hparams).items()))


def aux_loss(model: nn.Module) -> torch.Tensor | None:
    """Sum of the auxiliary losses (MoE balancing, routing commitment) set by the last forward.

    The one uniform convention: a primitive with an auxiliary loss stores it, as a scalar tensor,
    in its attribute `aux_loss` during forward (None when it has none).
    """
    total = None
    for module in model.modules():
        loss = getattr(module, "aux_loss", None)
        if isinstance(loss, torch.Tensor):
            total = loss if total is None else total + loss
    return total
