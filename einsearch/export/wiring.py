"""Wiring: an architecture as the constructor calls that `einsearch.build` makes, rendered as code.

`WiringWalker` is `einsearch.grammar.checker.Walker` with a second pass that, node for node, returns
the call the builder makes (same classes, same arguments) instead of the module; the widths come
from the builder's own typing (`real`, `mod`), so the two walks cannot disagree on a shape. Every
argument is rendered by `literal`: ints, finite floats, bools, None and short identifiers only, so
no text from an architecture string or a database ever becomes code.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable

import torch
from torch import nn

from einsearch.tasks import Task
from einsearch.export.source import ExportError
from einsearch.grammar import modules as M
from einsearch.grammar.checker import Walker, resolve_placement
from einsearch.grammar.tree import Node
from einsearch.ops.compose import operations as C
from einsearch.ops import get_op
from einsearch.ops.common import make_norm

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
LINE_WIDTH = 100


@dataclass(frozen=True)
class Lit:
    """A Python literal's text, made only by `literal`."""

    text: str


@dataclass(frozen=True)
class Call:
    """target(*args, **kwargs); target is a class or function whose source is exported, or an nn class."""

    target: Any
    args: tuple = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


def literal(value: Any) -> Lit:
    """The repr of a safe constant; anything else is refused."""
    if value is None or isinstance(value, bool):
        return Lit(repr(value))
    if isinstance(value, int):
        return Lit(repr(int(value)))
    if isinstance(value, float) and math.isfinite(value):
        return Lit(repr(float(value)))
    if isinstance(value, str) and IDENTIFIER.fullmatch(value):
        return Lit(repr(value))
    if isinstance(value, tuple) and len(value) <= 16:
        items = [literal(v).text for v in value]
        return Lit(f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})")
    raise ExportError(f"refusing to write {type(value).__name__} value {str(value)[:40]!r} into code")


def _registry_choice(name: str, key: str, value: Any) -> Any:
    """The registry's own choice object equal to `value` (same type: True is not 1)."""
    spec = get_op(name)
    if not IDENTIFIER.fullmatch(key) or key not in spec.hparams:
        raise ExportError(f"{name} has no hyperparameter {key!r}")
    for choice in spec.hparams[key]:
        if type(choice) is type(value) and choice == value:
            return choice
    raise ExportError(f"{name}: {key}={value!r} is not one of the registry's choices")


class WiringWalker(Walker):
    """The builder's walk, returning constructor calls."""

    def __init__(self, task: Task, dim: int):
        super().__init__(task, dim, build=False)

    def block_calls(self, root: Node) -> list[tuple[Node, Call]]:
        nodes = self.blocks(root)
        return [(b, self.block_call(b, i, len(nodes))) for i, b in enumerate(nodes)]

    def block_call(self, node: Node, index: int, total: int) -> Call:
        place, norm = node.args
        place = resolve_placement(place, index, total)
        layer = self.layer_call(node.children[0])
        return Call(M.Block, (layer, literal(self.dim), literal(place), literal(norm)))

    def layer_call(self, node: Node) -> Call:
        if node.kind == "op":
            return self.op_call(node)
        if node.kind == "parallel":
            return Call(M.Parallel, ([self.layer_call(c) for c in node.children], *map(literal, node.args)))
        if node.kind == "compose":
            return self.mod_call(node.children[0], "chan", Fraction(1))
        raise ExportError(f"cannot export layer kind {node.kind!r}")

    def op_call(self, node: Node) -> Call:
        """What `registry.create` calls: cls(dim=, causal=, [seq_len=,] **hparams)."""
        name, hparams = node.args
        spec = get_op(name)
        causal = self.causal or not spec.noncausal
        kwargs = [("dim", literal(self.dim)), ("causal", literal(causal))]
        if spec.needs_seq_len:
            kwargs.append(("seq_len", literal(self.seq_len)))
        for key, value in spec.resolve(dict(hparams)).items():
            kwargs.append((key, literal(_registry_choice(name, key, value))))
        return Call(spec.cls, (), tuple(kwargs))

    def mod_call(self, node: Node, mode: str, width: Fraction) -> Call:
        kind, n_in = node.kind, self.real(node, mode, width)
        if kind == "identity":
            return Call(nn.Identity)
        if kind == "act":
            return Call(C.Act, (literal(node.args[0]),))
        if kind == "linear":
            return Call(nn.Linear, (literal(n_in), literal(self.real(node, mode, node.args[0]))))
        if kind == "conv":
            return Call(C.DepthwiseConv, (literal(n_in), literal(node.args[0]), literal(self.causal)))
        if kind == "fnorm":
            return Call(make_norm, (literal(node.args[0]), literal(n_in)))
        if kind == "shift":
            return Call(C.Shift, (literal(node.args[0]),))
        if kind == "seq":
            parts, w = [], width
            for child in node.children:
                parts.append(self.mod_call(child, mode, w))
                w = self.mod(child, mode, w).width
            return Call(C.Seq, (parts,))
        if kind in ("branch", "split"):
            if kind == "split":
                width = width / 2
            left, right = (self.mod_call(c, mode, width) for c in node.children)
            cls = C.Split if kind == "split" else C.Branch
            return Call(cls, (literal(node.args[0]), left, right))
        if kind == "attend":
            q, k, v = (self.mod_call(c, "chan", width) for c in node.children)
            return Call(C.Attend, (literal(node.args[0]), q, k, v, literal(self.causal)))
        if kind == "permute":
            return Call(C.Permute, (self.mod_call(node.children[0], "tok", Fraction(1)),))
        raise ExportError(f"cannot export fundamental operation {kind!r}")


def recorded_call(factory: Callable[[], nn.Module]) -> Call:
    """The constructor call behind `factory()` (e.g. a task's make_stem), recorded by wrapping the
    returned module's class __init__ for one more call; built on the meta device."""
    with torch.device("meta"):
        cls = type(factory())
    own = cls.__dict__.get("__init__")
    init = cls.__init__
    seen: dict[int, tuple] = {}

    def recording(self, *args, **kwargs):
        seen.setdefault(id(self), (args, kwargs))
        init(self, *args, **kwargs)

    cls.__init__ = recording
    try:
        with torch.device("meta"):
            module = factory()
    finally:
        if own is None:
            del cls.__init__
        else:
            cls.__init__ = own
    if type(module) is not cls or id(module) not in seen:
        raise ExportError(f"cannot tell how {cls.__name__} was constructed")
    args, kwargs = seen[id(module)]
    for key in kwargs:
        if not IDENTIFIER.fullmatch(key):
            raise ExportError(f"refusing keyword argument {key[:40]!r} of {cls.__name__}")
    return Call(cls, tuple(literal(a) for a in args), tuple((k, literal(v)) for k, v in kwargs.items()))


def targets(value: Any) -> list[Any]:
    """Every call target inside a value, in order of first appearance."""
    out: list[Any] = []
    if isinstance(value, list):
        for item in value:
            out += targets(item)
    elif isinstance(value, Call):
        out.append(value.target)
        for item in list(value.args) + [v for _, v in value.kwargs]:
            out += targets(item)
    return out


def render(value: Any, name_of: Callable[[Any], str], indent: int = 0) -> str:
    """Code for a Call / Lit / list: one line when it fits, else one argument per line."""
    if isinstance(value, Lit):
        return value.text
    if isinstance(value, list):
        items = [render(v, name_of, indent + 4) for v in value]
        opening, closing = "[", "]"
    elif isinstance(value, Call):
        items = [render(a, name_of, indent + 4) for a in value.args]
        items += [f"{k}={render(v, name_of, indent + 4)}" for k, v in value.kwargs]
        opening, closing = f"{name_of(value.target)}(", ")"
    else:
        raise ExportError(f"cannot render {type(value).__name__}")
    line = opening + ", ".join(items) + closing
    if "\n" not in line and indent + len(line) <= LINE_WIDTH:
        return line
    pad = " " * (indent + 4)
    return opening + "\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + closing
