"""The derivation tree (the single source of truth) and the immutable `Arch` around it.

The canonical string, the hash, the networkx graph and its Weisfeiler-Lehman hash are all derived
from the tree. Node kinds mirror the grammar's rules:

    net(dim)            children: stages (block | repeat)
    repeat(times)       children: blocks
    block(place, norm)  children: (layer,)          place in pre/post/sandwich/mixln/none
    op(name, hparams)   children: ()                hparams: tuple of (key, value), declared order
    parallel()          children: layers
    compose()           children: (mod,)
    seq() | branch(agg) | split(agg) | attend(score) | permute()   children: mods
    linear(width) | conv(kernel) | act(fn) | fnorm(kind) | shift(k) | identity()
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterator

from einsearch.errors import EinsearchError

if TYPE_CHECKING:
    import networkx as nx


class ArchError(EinsearchError, ValueError):
    """A bad architecture: a parse error, a type error, or a limit it breaks. One line."""


# Bounds on every number the grammar admits, checked where the number is read (parser: with its line and
# column) and again before anything is expanded or built (check), so no input can ask for unbounded work.
MIN_WIDTH, MAX_WIDTH = 8, 8192  # net(width, ...)
MAX_REPEAT = 256  # repeat(times, ...)
MAX_BLOCKS = 256  # residual blocks of a whole net, repeats expanded (sampling defaults to 8)
MAX_KERNEL = 64  # conv(kernel)
MAX_SHIFT = 1 << 20  # shift(k); a task's sequence length bounds it further
MAX_LINEAR = 64  # linear(width): at most 64 x the axis unit
MAX_NUMBER_CHARS = 24  # a numeral longer than this is refused before it is converted


@dataclass(frozen=True)
class Node:
    kind: str
    args: tuple = ()
    children: tuple["Node", ...] = ()

    def replace_child(self, index: int, child: "Node") -> "Node":
        kids = list(self.children)
        kids[index] = child
        return Node(self.kind, self.args, tuple(kids))

    def walk(self) -> Iterator["Node"]:
        yield self
        for child in self.children:
            yield from child.walk()


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Fraction):
        return format_width(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_width(width: Fraction) -> str:
    """Widths print as plain decimals: 0.25, 0.5, 1, 2, 0.125."""
    if width.denominator == 1:
        return str(width.numerator)
    return f"{float(width):g}" if float(width) == width else str(float(width))


def to_text(node: Node) -> str:
    """Canonical string of a subtree: fixed spacing, every hyperparameter spelled out."""
    kind, args, kids = node.kind, node.args, node.children
    inner = ", ".join(to_text(c) for c in kids)
    if kind == "net":
        return f"net({args[0]}, {inner})"
    if kind == "repeat":
        return f"repeat({args[0]}, {inner})"
    if kind == "block":
        place, norm = args
        return f"block({'none' if place == 'none' else f'{place}:{norm}'}, {inner})"
    if kind == "op":
        name, hparams = args
        return f"{name}({', '.join(f'{k}={format_value(v)}' for k, v in hparams)})"
    if kind == "parallel":
        return f"parallel({args[0]}, {inner})" if args else f"parallel({inner})"
    if kind in ("compose", "seq", "permute"):
        return f"{kind}({inner})"
    if kind in ("branch", "split", "attend"):
        return f"{kind}({args[0]}, {inner})"
    if kind == "identity":
        return "id"
    if kind == "fnorm":
        return f"norm({args[0]})"
    if kind in ("linear", "conv", "act", "shift"):
        return f"{kind}({format_value(args[0])})"
    raise ArchError(f"unknown node kind {kind!r}")


@dataclass(frozen=True, eq=False)
class Arch:
    """An architecture: an immutable derivation tree. Equal trees are equal architectures."""

    root: Node
    _text: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_text", to_text(self.root))

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Arch({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Arch) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)

    @property
    def dim(self) -> int:
        return self.root.args[0]

    @cached_property
    def hash(self) -> str:
        """Stable 16-hex-digit hash of the canonical string."""
        return hashlib.sha256(self._text.encode()).hexdigest()[:16]

    def ops(self) -> tuple[str, ...]:
        """Sorted names of the registered primitives the architecture uses."""
        return tuple(sorted({n.args[0] for n in self.root.walk() if n.kind == "op"}))

    def graph(self) -> nx.DiGraph:
        """The derivation tree as a directed graph: node attribute `label` is the node's own text,
        edge attribute `pos` the child's position ('*' under commutative nodes, where order is
        notation only)."""
        import networkx as nx

        graph = nx.DiGraph()

        def add(node: Node, parent: int | None, pos: str) -> None:
            index = graph.number_of_nodes()
            graph.add_node(index, label=_label(node))
            if parent is not None:
                graph.add_edge(parent, index, pos=pos)
            commutative = _is_commutative(node)
            for i, child in enumerate(node.children):
                add(child, index, "*" if commutative else str(i))

        add(self.root, None, "")
        return graph

    @cached_property
    def graph_hash(self) -> str:
        """Weisfeiler-Lehman hash of `graph()`: equal for trees that differ only in notation
        (e.g. the order of commutative branches)."""
        import networkx as nx

        with warnings.catch_warnings():  # networkx notes that directed hashes changed in 3.5
            warnings.simplefilter("ignore", UserWarning)
            return nx.weisfeiler_lehman_graph_hash(
                self.graph(), node_attr="label", edge_attr="pos", iterations=4, digest_size=8)


def _is_commutative(node: Node) -> bool:
    return node.kind == "parallel" or (node.kind == "branch" and node.args[0] in ("add", "mul"))


def _label(node: Node) -> str:
    if node.kind == "op":
        return to_text(node)
    return f"{node.kind}:{','.join(format_value(a) for a in node.args)}"
