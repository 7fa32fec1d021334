"""Constrained PCFG sampling.

At every choice only the alternatives that can still complete within the limits (blocks, depth of
composed operations, parameter budget) are drawn, with their weights renormalised, so sampling
never retries and always terminates: every recursion is bounded by a depth or block limit, and the
cheapest completion of every open slot (identity, or one linear) is reserved before a choice is made.
"""
from __future__ import annotations

import functools
import itertools
import random
import tomllib
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from typing import Any, Sequence

from einsearch.grammar.shape import TaskShape
from einsearch.grammar.tree import MAX_BLOCKS, Node, format_value
from einsearch.ops import count_params, get_op, list_ops
from einsearch.ops.registry import CHANNEL_CATEGORIES, TOKEN_CATEGORIES

INF = float("inf")


@functools.lru_cache(maxsize=1)
def op_weight_tables() -> dict[str, dict[str, float]]:
    """Uniform weights for the choices the registry defines: which primitive within a category
    (`CATEGORY.op`) and each hyperparameter's value (`op.NAME.HPARAM`). weights.toml leaves them
    uniform; pcfg-learn re-estimates them like any other choice point. Compute-only hyperparameters
    are no choice point: the sampler gives them their default."""
    tables: dict[str, dict[str, float]] = {}
    for spec in list_ops():
        tables.setdefault(f"{spec.category}.op", {})[spec.name] = 1.0
        for key, values in spec.hparams.items():
            if key not in spec.compute_only:
                tables[f"op.{spec.name}.{key}"] = {format_value(v): 1.0 for v in values}
    return tables


def load_weights() -> dict[str, dict[str, float]]:
    """The PCFG weights: weights.toml (choice point -> alternative -> weight), then the registry's
    primitive and hyperparameter choices (uniform)."""
    text = resources.files("einsearch.grammar").joinpath("weights.toml").read_text()
    flat: dict[str, dict[str, float]] = {}

    def visit(prefix: str, table: dict) -> None:  # [mod.width] nests "width" inside [mod]
        for key, value in table.items():
            if isinstance(value, dict):
                visit(f"{prefix}.{key}" if prefix else key, value)
            else:
                flat.setdefault(prefix, {})[key] = float(value)

    visit("", tomllib.loads(text))
    return {**op_weight_tables(), **flat}


@dataclass(frozen=True)
class Limits:
    max_params: int | None = None
    max_blocks: int = 8
    max_mod_depth: int = 3
    min_dim: int = 32
    max_dim: int = 512

    def __post_init__(self) -> None:
        if not 1 <= self.max_blocks <= MAX_BLOCKS:
            raise ValueError(f"max_blocks must be 1..{MAX_BLOCKS}, got {self.max_blocks}")
        if self.max_mod_depth < 0:
            raise ValueError(f"max_mod_depth must be >= 0, got {self.max_mod_depth}")
        if self.max_params is not None and self.max_params <= 0:
            raise ValueError(f"max_params must be positive, got {self.max_params}")


def choose(rng: random.Random, options: Sequence[tuple[Any, float]]) -> Any:
    """Weighted choice among (item, weight) pairs with positive weight (renormalised)."""
    options = [(item, w) for item, w in options if w > 0]
    total = sum(w for _, w in options)
    pick = rng.random() * total
    for item, w in options:
        pick -= w
        if pick < 0:
            return item
    return options[-1][0]


@dataclass(frozen=True)
class _Combo:
    hparams: tuple[tuple[str, Any], ...]
    params: int


@functools.lru_cache(maxsize=None)
def op_combos(name: str, dim: int, causal: bool, seq_len: int) -> tuple[_Combo, ...]:
    """Every valid hyperparameter combination of a primitive at width `dim`, with its exact
    parameter count, cheapest first."""
    spec = get_op(name)
    keys = list(spec.hparams)
    combos = []
    for values in itertools.product(*(spec.hparams[k] for k in keys)):
        hp = dict(zip(keys, values))
        if spec.check_dim(dim, hp):
            continue
        combos.append(_Combo(tuple(hp.items()), count_params(name, dim, causal, hp, seq_len=seq_len)))
    return tuple(sorted(combos, key=lambda c: c.params))


@functools.lru_cache(maxsize=65536)
def _min_cost(unit: int, w_in: Fraction, w_out: Fraction) -> float:
    size_in, size_out = w_in * unit, w_out * unit
    if size_in.denominator != 1 or size_out.denominator != 1 or size_in < 1 or size_out < 1:
        return INF
    if w_in == w_out:
        return 0
    return int(size_in) * int(size_out) + int(size_out)


class Sampler:
    """Draws derivation trees for one task under `limits`. Typed entry points serve mutation."""

    def __init__(self, task: TaskShape, limits: Limits = Limits(), weights: dict | None = None):
        self.task, self.limits = task, limits
        self.w = weights or load_weights()
        self.causal, self.seq_len = task.causal, task.seq_len
        self.budget = INF if limits.max_params is None else limits.max_params
        self._usable: dict[tuple, list[str]] = {}

    # ---- helpers ------------------------------------------------------------------------------
    def table(self, key: str) -> list[tuple[str, float]]:
        return list(self.w[key].items())

    def weight(self, table: str, alternative: str) -> float:
        """An alternative's weight; 1 where the table or the alternative is missing (a primitive
        registered after the weights were learned)."""
        return self.w.get(table, {}).get(alternative, 1.0)

    def op_causal(self, name: str) -> bool:
        return self.causal or not get_op(name).noncausal

    def usable_ops(self, categories: Sequence[str]) -> list[str]:
        key = tuple(categories)
        if key not in self._usable:
            self._usable[key] = [s.name for s in list_ops()
                                 if s.category in categories and (s.causal or not self.causal)]
        return self._usable[key]

    def combos(self, name: str, dim: int) -> tuple[_Combo, ...]:
        return op_combos(name, dim, self.op_causal(name), self.seq_len)

    def stem_head(self, dim: int) -> int:
        from einsearch.grammar.checker import _stem_head_params

        return sum(_stem_head_params(self.task, dim))

    # ---- structure ----------------------------------------------------------------------------
    def net(self, rng: random.Random) -> Node:
        lim = self.limits
        dims = [(int(d), w) for d, w in self.table("net.dim")
                if lim.min_dim <= int(d) <= lim.max_dim and self.stem_head(int(d)) <= self.budget]
        if not dims:
            from einsearch.grammar.tree import ArchError

            raise ArchError(f"no width fits max_params={lim.max_params} for task {self.task.spec} "
                            f"(stem and head alone need {self.stem_head(lim.min_dim)})")
        dim = choose(rng, dims)
        budget = self.budget - self.stem_head(dim)
        stages: list[Node] = []
        blocks = 0
        while True:
            stage, cost, used = self.stage(rng, dim, budget, lim.max_blocks - blocks)
            stages.append(stage)
            budget, blocks = budget - cost, blocks + used
            if blocks >= lim.max_blocks or choose(rng, self.table("stages")) == "end":
                return Node("net", (dim,), tuple(stages))

    def stage(self, rng: random.Random, dim: int, budget: float, blocks_left: int) -> tuple[Node, int, int]:
        """A block or a repeat group: (node, parameters, blocks used)."""
        options = self.table("stage") if blocks_left >= 2 else [("block", 1.0)]
        if choose(rng, options) == "block":
            node, cost = self.block(rng, dim, budget)
            return node, cost, 1
        times = choose(rng, [(int(t), w) for t, w in self.table("repeat.times") if int(t) <= blocks_left])
        inner = choose(rng, [(int(k), w) for k, w in self.table("repeat.blocks") if times * int(k) <= blocks_left])
        group_budget, blocks, cost = budget / times, [], 0
        for _ in range(inner):
            node, c = self.block(rng, dim, group_budget - cost)
            blocks.append(node)
            cost += c
        return Node("repeat", (times,), tuple(blocks)), times * cost, times * inner

    def block(self, rng: random.Random, dim: int, budget: float) -> tuple[Node, int]:
        norm_options = []
        for alt, w in self.table("norm"):
            if alt == "no_norm":
                norm_options.append((("none", None), w))
                continue
            for place, wp in self.table("PLACEMENT"):
                for kind, wk in self.table("NORMKIND"):
                    cost = (2 if place == "sandwich" else 1) * dim * (1 if kind == "rms" else 2)
                    if cost <= budget:
                        norm_options.append(((place, kind), w * wp * wk))
        place, kind = choose(rng, norm_options)
        norm_cost = 0 if place == "none" else (2 if place == "sandwich" else 1) * dim * (1 if kind == "rms" else 2)
        layer, cost = self.layer(rng, dim, budget - norm_cost)
        return Node("block", (place, kind), (layer,)), cost + norm_cost

    def layer(self, rng: random.Random, dim: int, budget: float, allow_parallel: bool = True) -> tuple[Node, int]:
        kinds = []
        for kind, w in self.table("layer"):
            if kind == "parallel" and not allow_parallel:
                continue
            if kind in ("token_mixer", "channel_mixer") and not self._op_categories(kind, dim, budget):
                continue
            kinds.append((kind, w))
        kind = choose(rng, kinds)
        if kind == "compose":
            mod, cost = self.mod(rng, "chan", dim, Fraction(1), Fraction(1), self.limits.max_mod_depth, budget)
            return Node("compose", (), (mod,)), cost
        if kind == "parallel":
            first, c1 = self.layer(rng, dim, budget, allow_parallel=False)
            second, c2 = self.layer(rng, dim, budget - c1, allow_parallel=False)
            agg = choose(rng, self.table("parallel.agg"))
            return Node("parallel", () if agg == "mean" else (agg,), (first, second)), c1 + c2
        categories = self._op_categories(kind, dim, budget)
        category = choose(rng, categories)
        names = [n for n in self.usable_ops((category,)) if self._cheapest(n, dim) <= budget]
        return self.op(rng, choose(rng, [(n, self.weight(f"{category}.op", n)) for n in names]), dim, budget)

    def _op_categories(self, kind: str, dim: int, budget: float) -> list[tuple[str, float]]:
        table = self.table(f"{kind}.category")
        allowed = TOKEN_CATEGORIES if kind == "token_mixer" else CHANNEL_CATEGORIES
        return [(c, w) for c, w in table if c in allowed and any(
            self._cheapest(n, dim) <= budget for n in self.usable_ops((c,)))]

    def _cheapest(self, name: str, dim: int) -> float:
        combos = self.combos(name, dim)
        return combos[0].params if combos else INF

    def op(self, rng: random.Random, name: str, dim: int, budget: float, keep: dict | None = None) -> tuple[Node, int]:
        """A primitive with hyperparameters drawn by weight (uniform by default) among those that fit the budget.
        `keep` pins some hyperparameters (mutation changes one and keeps the others); compute-only ones
        take their default (else the first that fits), so no two draws differ only in how they compute."""
        spec = get_op(name)
        feasible = [c for c in self.combos(name, dim) if c.params <= budget]
        for key in spec.hparams:
            values = []
            for combo in feasible:
                value = dict(combo.hparams)[key]
                if value not in values:
                    values.append(value)
            if keep and key in keep and keep[key] in values:
                value = keep[key]
            elif key in spec.compute_only:
                value = spec.defaults[key] if spec.defaults[key] in values else values[0]
            else:
                value = choose(rng, [(v, self.weight(f"op.{name}.{key}", format_value(v))) for v in values])
            feasible = [c for c in feasible if dict(c.hparams)[key] == value]
        combo = feasible[0]
        return Node("op", (name, combo.hparams)), combo.params

    # ---- fundamental operations ---------------------------------------------------------------
    def _units(self, mode: str, dim: int) -> int:
        return dim if mode == "chan" else self.seq_len

    def min_cost(self, mode: str, dim: int, w_in: Fraction, w_out: Fraction) -> float:
        """Cheapest completion of mod(w_in -> w_out): identity, else one linear."""
        return _min_cost(self._units(mode, dim), w_in, w_out)

    def mod(self, rng: random.Random, mode: str, dim: int, w_in: Fraction, w_out: Fraction,
            depth: int, budget: float) -> tuple[Node, int]:
        """A fundamental-operation subtree mapping width w_in to w_out within `budget` params."""
        unit = self._units(mode, dim)
        n_in = int(w_in * unit)
        widths = [(Fraction(k), w) for k, w in self.table("mod.width")]
        if mode == "tok":
            widths = [(x, w) for x, w in widths if x >= 1]
        same, chan = w_in == w_out, mode == "chan"
        plans: list[tuple[tuple, float]] = []  # (plan, weight); a plan fixes the node and its args
        for alt, weight in self.table("mod"):
            if alt == "identity" and same:
                plans.append((("identity",), weight))
            elif alt == "act" and same:
                plans.extend((("act", a), weight * wa) for a, wa in self.table("ACT"))
            elif alt == "fnorm" and same and chan:
                plans.extend((("fnorm", k), weight * wk) for k, wk in self.table("NORMKIND")
                             if n_in * (1 if k == "rms" else 2) <= budget)
            elif alt == "conv" and same and chan:
                plans.extend((("conv", int(k)), weight * wk) for k, wk in self.table("conv.kernel")
                             if n_in * int(k) + n_in <= budget)
            elif alt == "shift" and same and chan:
                plans.extend((("shift", int(k)), weight * wk) for k, wk in self.table("shift.k")
                             if int(k) < self.seq_len)
            elif alt == "linear" and not same and self.min_cost(mode, dim, w_in, w_out) <= budget:
                plans.append((("linear",), weight))
            elif alt == "seq" and depth > 0:
                mids = [(m, w) for m, w in widths if self.min_cost(mode, dim, w_in, m)
                        + self.min_cost(mode, dim, m, w_out) <= budget]
                plans.extend((("seq", m), weight * w / len(mids)) for m, w in mids)
            elif alt in ("branch", "split") and depth > 0 and (chan or alt == "branch"):
                if alt == "split" and n_in % 2:
                    continue
                src = w_in / 2 if alt == "split" else w_in
                aggs = [(a, w) for a, w in self.table("AGG")
                        if 2 * self.min_cost(mode, dim, src, w_out / 2 if a == "cat" else w_out) <= budget]
                plans.extend(((alt, a), weight * w / len(aggs)) for a, w in aggs)
            elif alt == "attend" and depth > 0 and chan:
                dks = [(k, w) for k, w in widths if 2 * self.min_cost(mode, dim, w_in, k)
                       + self.min_cost(mode, dim, w_in, w_out) <= budget]
                plans.extend((("attend", k), weight * w / len(dks)) for k, w in dks)
            elif alt == "permute" and depth > 0 and chan and same and not self.causal:
                plans.append((("permute",), weight))
        return self._expand(rng, choose(rng, plans), mode, dim, w_in, w_out, depth, budget)

    def _expand(self, rng: random.Random, plan: tuple, mode: str, dim: int, w_in: Fraction,
                w_out: Fraction, depth: int, budget: float) -> tuple[Node, int]:
        kind, unit = plan[0], self._units(mode, dim)
        n_in = int(w_in * unit)
        if kind == "identity":
            return Node("identity"), 0
        if kind == "act":
            return Node("act", (plan[1],)), 0
        if kind == "fnorm":
            return Node("fnorm", (plan[1],)), n_in * (1 if plan[1] == "rms" else 2)
        if kind == "conv":
            return Node("conv", (plan[1],)), n_in * plan[1] + n_in
        if kind == "shift":
            return Node("shift", (plan[1],)), 0
        if kind == "linear":
            return Node("linear", (w_out,)), int(self.min_cost(mode, dim, w_in, w_out))
        # Composite: each child gets the budget left after reserving its later siblings' minimum.
        if kind == "seq":
            slots = [(w_in, plan[1]), (plan[1], w_out)]
        elif kind == "branch":
            half = w_out / 2 if plan[1] == "cat" else w_out
            slots = [(w_in, half), (w_in, half)]
        elif kind == "split":
            half = w_out / 2 if plan[1] == "cat" else w_out
            slots = [(w_in / 2, half), (w_in / 2, half)]
        elif kind == "attend":
            slots = [(w_in, plan[1]), (w_in, plan[1]), (w_in, w_out)]
        else:  # permute: the inner module mixes positions, L -> L
            child, cost = self.mod(rng, "tok", dim, Fraction(1), Fraction(1), depth - 1, budget)
            return Node("permute", (), (child,)), cost
        children, spent = [], 0
        for i, (a, b) in enumerate(slots):
            reserve = sum(self.min_cost(mode, dim, x, y) for x, y in slots[i + 1:])
            child, cost = self.mod(rng, mode, dim, a, b, depth - 1, budget - spent - reserve)
            children.append(child)
            spent += cost
        if kind == "seq":
            args = ()
        elif kind == "attend":
            args = (choose(rng, self.table("SCORE")),)
        else:
            args = (plan[1],)
        return Node(kind, args, tuple(children)), spent
