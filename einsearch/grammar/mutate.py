"""Tree operations for search: typed subtrees, subtree resampling, hyperparameter and depth changes,
crossover.

Every result is a valid sentence within the limits by construction: a replacement is drawn by the
constrained sampler for the slot's own type, with the budget the rest of the tree leaves it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

from einsearch.grammar.checker import Walker, check
from einsearch.grammar.sampler import Limits, Sampler
from einsearch.grammar.shape import TaskShape
from einsearch.grammar.tree import MAX_REPEAT, Arch, Node
from einsearch.ops import get_op

ONE = Fraction(1)


@dataclass(frozen=True)
class Slot:
    """The nonterminal type of a position in the tree."""

    kind: str  # stage | block | layer | mod
    mode: str = "chan"  # mods: chan (width unit D) or tok (unit L, inside permute)
    w_in: Fraction = ONE
    w_out: Fraction = ONE
    depth_left: int = 0  # mods: how deep a replacement may nest
    times: int = 1  # copies of this position (inside repeat): its parameters count this often
    in_parallel: bool = False  # layers inside parallel(...) may not be parallel themselves

    def compatible(self, other: "Slot") -> bool:
        return (self.kind, self.mode, self.w_in, self.w_out, self.in_parallel) == \
            (other.kind, other.mode, other.w_in, other.w_out, other.in_parallel)


@dataclass(frozen=True)
class Subtree:
    path: tuple[int, ...]  # child indices from the root
    slot: Slot
    node: Node


def get_node(root: Node, path: tuple[int, ...]) -> Node:
    for i in path:
        root = root.children[i]
    return root


def replace(root: Node, path: tuple[int, ...], new: Node) -> Node:
    if not path:
        return new
    return root.replace_child(path[0], replace(root.children[path[0]], path[1:], new))


def subtrees(arch: Arch, task: TaskShape, limits: Limits = Limits()) -> list[Subtree]:
    """Every replaceable position with its type, in depth-first order (the root excluded)."""
    walker = Walker(task, arch.dim, build=False)
    out: list[Subtree] = []

    def mod(node: Node, path: tuple, mode: str, w_in: Fraction, depth_left: int, times: int) -> None:
        w_out = walker.mod(node, mode, w_in).width
        out.append(Subtree(path, Slot("mod", mode, w_in, w_out, depth_left, times), node))
        if node.kind == "seq":
            w = w_in
            for i, child in enumerate(node.children):
                mod(child, path + (i,), mode, w, depth_left - 1, times)
                w = walker.mod(child, mode, w).width
        elif node.kind in ("branch", "split"):
            src = w_in / 2 if node.kind == "split" else w_in
            for i, child in enumerate(node.children):
                mod(child, path + (i,), mode, src, depth_left - 1, times)
        elif node.kind == "attend":
            for i, child in enumerate(node.children):
                mod(child, path + (i,), mode, w_in, depth_left - 1, times)
        elif node.kind == "permute":
            mod(node.children[0], path + (0,), "tok", ONE, depth_left - 1, times)

    def layer(node: Node, path: tuple, times: int, in_parallel: bool) -> None:
        out.append(Subtree(path, Slot("layer", times=times, in_parallel=in_parallel), node))
        if node.kind == "parallel":
            for i, child in enumerate(node.children):
                layer(child, path + (i,), times, True)
        elif node.kind == "compose":
            mod(node.children[0], path + (0,), "chan", ONE, limits.max_mod_depth, times)

    for s, stage in enumerate(arch.root.children):
        out.append(Subtree((s,), Slot("stage"), stage))
        if stage.kind == "repeat":
            for b, block in enumerate(stage.children):
                out.append(Subtree((s, b), Slot("block", times=stage.args[0]), block))
                layer(block.children[0], (s, b, 0), stage.args[0], False)
        else:
            layer(stage.children[0], (s, 0), 1, False)
    return out


def _stub(slot: Slot, sampler: Sampler, dim: int) -> tuple[Node, int]:
    """The cheapest sentence of a slot's type, with its parameter count."""
    id_layer = Node("compose", (), (Node("identity"),))
    if slot.kind in ("stage", "block"):
        return Node("block", ("none", None), (id_layer,)), 0
    if slot.kind == "layer":
        return id_layer, 0
    if slot.w_in == slot.w_out:
        return Node("identity"), 0
    return Node("linear", (slot.w_out,)), int(sampler.min_cost(slot.mode, dim, slot.w_in, slot.w_out))


def _budget(arch: Arch, task: TaskShape, sampler: Sampler, sub: Subtree) -> float:
    """Parameters a replacement of `sub` may use: what the rest of the tree leaves, per copy."""
    if sampler.budget == float("inf"):
        return float("inf")
    stub, stub_cost = _stub(sub.slot, sampler, arch.dim)
    rest = check(Arch(replace(arch.root, sub.path, stub)), task).params - stub_cost * sub.slot.times
    return (sampler.budget - rest) / sub.slot.times


def _blocks(node: Node) -> int:
    return node.args[0] * len(node.children) if node.kind == "repeat" else 1


def resample(arch: Arch, task: TaskShape, rng: random.Random, limits: Limits = Limits(),
             sub: Subtree | None = None) -> Arch:
    """Replace one subtree (uniformly chosen unless given) with a fresh one of the same type."""
    sampler = Sampler(task, limits)
    sub = sub or rng.choice(subtrees(arch, task, limits))
    budget, dim = _budget(arch, task, sampler, sub), arch.dim
    slot = sub.slot
    if slot.kind == "stage":
        used = sum(_blocks(s) for s in arch.root.children) - _blocks(sub.node)
        new, _, _ = sampler.stage(rng, dim, budget, limits.max_blocks - used)
    elif slot.kind == "block":
        new, _ = sampler.block(rng, dim, budget)
    elif slot.kind == "layer":
        new, _ = sampler.layer(rng, dim, budget, allow_parallel=not slot.in_parallel)
    else:
        new, _ = sampler.mod(rng, slot.mode, dim, slot.w_in, slot.w_out, max(slot.depth_left, 0), budget)
    return Arch(replace(arch.root, sub.path, new))


def change_hparam(arch: Arch, task: TaskShape, rng: random.Random, limits: Limits = Limits()) -> Arch | None:
    """Change one hyperparameter of one primitive to another value that fits; None if none can.
    Compute-only hyperparameters (a scan's chunk) are never changed: the result would train the same."""
    sampler = Sampler(task, limits)
    options = []
    for sub in subtrees(arch, task, limits):
        if sub.node.kind != "op":
            continue
        name, hparams = sub.node.args
        budget = _budget(arch, task, sampler, sub)
        compute_only = get_op(name).compute_only
        for key, value in hparams:
            if key in compute_only:
                continue
            others = {k: v for k, v in hparams if k != key}
            values = {dict(c.hparams)[key] for c in sampler.combos(name, arch.dim)
                      if c.params <= budget and all(dict(c.hparams)[k] == v for k, v in others.items())}
            values.discard(value)
            options.extend((sub, key, v) for v in sorted(values, key=repr))
    if not options:
        return None
    sub, key, value = rng.choice(options)
    name, hparams = sub.node.args
    new = Node("op", (name, tuple((k, value if k == key else v) for k, v in hparams)))
    return Arch(replace(arch.root, sub.path, new))


def change_depth(arch: Arch, task: TaskShape, rng: random.Random, limits: Limits = Limits()) -> Arch | None:
    """One copy more or fewer of a repeated group (a group left with one copy becomes plain stages), or
    one stage fewer; None if no such change fits the limits. Resampling alone never shortens a net
    while keeping its layers, e.g. one DeltaNet layer from the two-layer baseline."""
    budget = Sampler(task, limits).budget
    stages = arch.root.children
    blocks = sum(_blocks(s) for s in stages)
    roots = []
    for s, stage in enumerate(stages):
        if stage.kind == "repeat":
            n, group = stage.args[0], stage.children
            if n + 1 <= MAX_REPEAT and blocks + len(group) <= limits.max_blocks:
                roots.append(arch.root.replace_child(s, Node("repeat", (n + 1,) + stage.args[1:], group)))
            if n == 2:
                roots.append(Node(arch.root.kind, arch.root.args, stages[:s] + group + stages[s + 1:]))
            elif n > 2:
                roots.append(arch.root.replace_child(s, Node("repeat", (n - 1,) + stage.args[1:], group)))
        if len(stages) > 1:
            roots.append(Node(arch.root.kind, arch.root.args, stages[:s] + stages[s + 1:]))
    fits = [Arch(root) for root in roots if check(Arch(root), task).params <= budget]
    return rng.choice(fits) if fits else None


def crossover(a: Arch, b: Arch, task: TaskShape, rng: random.Random, limits: Limits = Limits()) -> Arch | None:
    """Put a subtree of `b` into a compatible position of `a` (same type, within the limits);
    None if no pair fits."""
    if a.dim != b.dim:
        return None
    pairs = [(x, y) for x in subtrees(a, task, limits) for y in subtrees(b, task, limits)
             if x.slot.compatible(y.slot) and x.node != y.node]
    rng.shuffle(pairs)
    blocks_a = sum(_blocks(s) for s in a.root.children)
    for x, y in pairs:
        if x.slot.kind == "stage" and blocks_a - _blocks(x.node) + _blocks(y.node) > limits.max_blocks:
            continue
        if x.slot.kind == "mod" and _depth(y.node) > max(x.slot.depth_left, 0):
            continue
        child = Arch(replace(a.root, x.path, y.node))
        if limits.max_params is None or check(child, task).params <= limits.max_params:
            return child
    return None


def _depth(node: Node) -> int:
    return 0 if not node.children else 1 + max(_depth(c) for c in node.children)
