"""Type checking, counting and building: one walk over the derivation tree.

`check(arch, task)` infers widths and causality symbolically (no forward) and counts parameters,
FLOPs per token and decoding state. `build(arch, task)` runs the same walk and also creates the
modules, so the two cannot disagree.

Typing: every mod (fundamental operation) consumes and produces a tensor whose mixed axis has a
width in units of that axis: D on the channel axis, L on the position axis (inside `permute`). A
block's layer must map (B, L, D) to (B, L, D). Causality: a causal task admits only primitives that
can run causally and no `permute`; `attend`, `conv` and `shift` run masked/left-padded.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from torch import nn

from einsearch.grammar import modules as M
from einsearch.grammar.shape import TaskShape
from einsearch.grammar.tree import (MAX_BLOCKS, MAX_REPEAT, MAX_WIDTH, MIN_WIDTH, Arch, ArchError, Node,
                                    to_text)
from einsearch.ops.compose import operations as C
from einsearch.ops import count_params, create, get_op
from einsearch.ops.registry import count_module_params
from einsearch.ops.common import make_norm

MIX_LN_SHARE = 0.25  # Mix-LN: the first floor(share * blocks) `mixln` blocks are post-norm
MAX_AXIS = 1 << 20  # channels (or positions) any fundamental operation may produce
MAX_BUILD_PARAMS = 4 * 10**9  # build refuses a model larger than this (16 GB of float32 weights)


@dataclass(frozen=True)
class Report:
    params: int
    flops_per_token: int  # ~2 x weights used per token (routed: active ones) + sequence-mixing terms
    depth: int  # residual blocks, repeats expanded
    causal: bool  # output t never depends on inputs after t
    state_size: int  # decoding state per sequence at the task's length (KV caches, SSM states)
    blocks: int
    dim: int
    ops: tuple[str, ...]


@dataclass
class _Info:
    width: Fraction  # output width in axis units
    params: int = 0
    flops: int = 0
    state: int = 0
    module: nn.Module | None = None


def _short(node: Node) -> str:
    text = to_text(node)
    return text if len(text) <= 70 else text[:67] + "..."


def resolve_placement(place: str, index: int, total: int) -> str:
    """The norm placement block `index` of `total` really uses: `mixln` is post-norm in the first quarter."""
    if place != "mixln":
        return place
    return "post" if index < math.floor(MIX_LN_SHARE * total) else "pre"


class Walker:
    def __init__(self, task: TaskShape, dim: int, build: bool):
        self.task, self.dim, self.build = task, dim, build
        self.causal = task.causal
        self.seq_len = task.seq_len

    # ---- structure ----------------------------------------------------------------------------
    def blocks(self, root: Node) -> list[Node]:
        total = 0  # counted before anything is expanded
        for stage in root.children:
            if stage.kind == "repeat":
                times = stage.args[0]
                if not isinstance(times, int) or not 1 <= times <= MAX_REPEAT:
                    raise ArchError(f"in {_short(stage)}: repeat count must be 1..{MAX_REPEAT}")
                total += times * len(stage.children)
            else:
                total += 1
        if total > MAX_BLOCKS:
            raise ArchError(f"the net has {total:,} blocks with its repeats expanded, limit {MAX_BLOCKS}")
        out: list[Node] = []
        for stage in root.children:
            if stage.kind == "repeat":
                out.extend(list(stage.children) * stage.args[0])
            else:
                out.append(stage)
        return out

    def block(self, node: Node, index: int, total: int) -> _Info:
        place, norm = node.args
        place = resolve_placement(place, index, total)
        info = self.layer(node.children[0])
        norms = {"none": 0, "pre": 1, "post": 1, "sandwich": 2}[place]
        norm_params = norms * self.dim * (1 if norm == "rms" else 2)
        module = M.Block(info.module, self.dim, place, norm) if self.build else None
        return _Info(Fraction(1), info.params + norm_params, info.flops + 4 * norms * self.dim, info.state, module)

    def layer(self, node: Node) -> _Info:
        if node.kind == "op":
            return self.op(node)
        if node.kind == "parallel":
            parts = [self.layer(c) for c in node.children]
            module = M.Parallel([p.module for p in parts], *node.args) if self.build else None
            return _Info(Fraction(1), sum(p.params for p in parts), sum(p.flops for p in parts),
                         sum(p.state for p in parts), module)
        if node.kind == "compose":
            info = self.mod(node.children[0], "chan", Fraction(1))
            if info.width != 1:
                raise ArchError(f"in {_short(node)}: a composed layer must map width D to D, "
                                f"it maps D to {info.width}*D")
            return info
        raise ArchError(f"in {_short(node)}: a block holds a primitive, parallel(...) or compose(...)")

    def op(self, node: Node) -> _Info:
        name, hparams = node.args
        spec = get_op(name)
        if self.causal and not spec.causal:
            raise ArchError(f"in {_short(node)}: {name} cannot run causally, and task "
                            f"{self.task.name} is causal")
        hp = dict(hparams)
        problem = spec.check_dim(self.dim, hp)
        if problem:
            raise ArchError(f"in {_short(node)}: {problem} (width {self.dim})")
        causal = self.causal or not spec.noncausal
        params = count_params(name, self.dim, causal, hp, seq_len=self.seq_len)
        # routed primitives (MoE) use fewer weights per token than they hold
        active = spec.active(self.dim, spec.resolve(hp), params)
        flops = 2 * active + spec.extra_flops(self.dim, self.seq_len, hp)
        module = create(name, self.dim, causal=causal, seq_len=self.seq_len, **hp) if self.build else None
        state = spec.state(self.dim, self.seq_len, hp) if spec.is_token_mixer else 0
        return _Info(Fraction(1), params, flops, state, module)

    # ---- fundamental operations ---------------------------------------------------------------
    def real(self, node: Node, mode: str, width: Fraction) -> int:
        unit = self.dim if mode == "chan" else self.seq_len
        size = width * unit
        axis = "D" if mode == "chan" else "L"
        if size > MAX_AXIS:
            raise ArchError(f"in {_short(node)}: width {float(width):g}*{axis} is over {MAX_AXIS:,} channels")
        if size.denominator != 1 or size < 1:
            raise ArchError(f"in {_short(node)}: width {width}*{axis} = {float(size):g} is not a "
                            f"whole number of channels ({axis} = {unit})")
        return int(size)

    def mod(self, node: Node, mode: str, width: Fraction) -> _Info:
        kind, build = node.kind, self.build
        n_in = self.real(node, mode, width)
        if kind == "identity":
            return _Info(width, module=nn.Identity() if build else None)
        if kind == "act":
            return _Info(width, flops=n_in, module=C.Act(node.args[0]) if build else None)
        if kind == "linear":
            out = node.args[0]
            n_out = self.real(node, mode, out)
            params = n_in * n_out + n_out
            # On the position axis one linear mixes L positions for each of D channels.
            flops = 2 * params if mode == "chan" else 2 * n_in * n_out * self.dim // self.seq_len
            return _Info(out, params, flops, module=nn.Linear(n_in, n_out) if build else None)
        if kind in ("conv", "fnorm", "shift", "attend", "permute") and mode != "chan":
            raise ArchError(f"in {_short(node)}: {kind} works on the channel axis, not inside permute")
        if kind == "conv":
            k = node.args[0]
            if not 1 <= k <= 64:
                raise ArchError(f"in {_short(node)}: conv kernel must be 1..64, got {k}")
            module = C.DepthwiseConv(n_in, k, self.causal) if build else None
            return _Info(width, n_in * k + n_in, 2 * n_in * k, (k - 1) * n_in, module)
        if kind == "fnorm":
            kind_ = node.args[0]
            module = make_norm(kind_, n_in) if build else None
            return _Info(width, n_in * (1 if kind_ == "rms" else 2), 4 * n_in, module=module)
        if kind == "shift":
            k = node.args[0]
            if not 1 <= k < self.seq_len:
                raise ArchError(f"in {_short(node)}: shift must be 1..{self.seq_len - 1}, got {k}")
            return _Info(width, state=k * n_in, module=C.Shift(k) if build else None)
        if kind == "seq":
            parts, w = [], width
            for child in node.children:
                parts.append(self.mod(child, mode, w))
                w = parts[-1].width
            return self._combine(w, parts, C.Seq([p.module for p in parts]) if build else None)
        if kind in ("branch", "split"):
            return self._branch(node, mode, width, n_in)
        if kind == "attend":
            return self._attend(node, width)
        if kind == "permute":
            if self.causal:
                raise ArchError(f"in {_short(node)}: permute mixes all positions; task "
                                f"{self.task.name} is causal")
            inner = self.mod(node.children[0], "tok", Fraction(1))
            if inner.width != 1:
                raise ArchError(f"in {_short(node)}: the module inside permute must map L to L, "
                                f"it maps L to {inner.width}*L")
            return _Info(width, inner.params, inner.flops, 0, C.Permute(inner.module) if build else None)
        raise ArchError(f"in {_short(node)}: {kind} is not a fundamental operation")

    def _combine(self, width: Fraction, parts: list[_Info], module: nn.Module | None) -> _Info:
        return _Info(width, sum(p.params for p in parts), sum(p.flops for p in parts),
                     sum(p.state for p in parts), module)

    def _branch(self, node: Node, mode: str, width: Fraction, n_in: int) -> _Info:
        agg = node.args[0]
        if node.kind == "split":
            if n_in % 2:
                raise ArchError(f"in {_short(node)}: split needs an even width, got {n_in}")
            width = width / 2
        left, right = (self.mod(c, mode, width) for c in node.children)
        if agg in ("add", "mul") and left.width != right.width:
            raise ArchError(f"in {_short(node)}: {agg} needs equal widths, got {left.width} and {right.width}")
        out = left.width + right.width if agg == "cat" else left.width
        cls = C.Split if node.kind == "split" else C.Branch
        module = cls(agg, left.module, right.module) if self.build else None
        info = self._combine(out, [left, right], module)
        info.flops += self.real(node, mode, out)
        return info

    def _attend(self, node: Node, width: Fraction) -> _Info:
        q, k, v = (self.mod(c, "chan", width) for c in node.children)
        if q.width != k.width:
            raise ArchError(f"in {_short(node)}: queries and keys need equal widths, got {q.width} and {k.width}")
        d_qk, d_v = self.real(node, "chan", q.width), self.real(node, "chan", v.width)
        context = (self.seq_len + 1) / 2 if self.causal else self.seq_len
        module = C.Attend(node.args[0], q.module, k.module, v.module, self.causal) if self.build else None
        info = self._combine(v.width, [q, k, v], module)
        info.flops += int(2 * context * (d_qk + d_v))
        info.state += self.seq_len * (d_qk + d_v)
        return info


def _as_arch(arch: Arch | str) -> Arch:
    if isinstance(arch, Arch):
        return arch
    from einsearch.grammar.parser import parse

    return parse(arch)


@functools.lru_cache(maxsize=4096)
def _stem_head_params(task: TaskShape, dim: int) -> tuple[int, int]:
    return count_module_params(lambda: task.make_stem(dim)), count_module_params(lambda: task.make_head(dim))


def _walk(arch: Arch, task: TaskShape, build: bool) -> tuple[Report, nn.Module | None]:
    root = arch.root
    if root.kind != "net" or not root.children:
        raise ArchError("an architecture is net(width, stage, ...) with at least one stage")
    dim = root.args[0]
    if not isinstance(dim, int) or not MIN_WIDTH <= dim <= MAX_WIDTH:
        raise ArchError(f"net width must be {MIN_WIDTH}..{MAX_WIDTH}, got {dim}")
    walker = Walker(task, dim, build)
    block_nodes = walker.blocks(root)
    infos = [walker.block(b, i, len(block_nodes)) for i, b in enumerate(block_nodes)]
    stem_params, head_params = _stem_head_params(task, dim)
    report = Report(
        params=stem_params + head_params + sum(i.params for i in infos),
        flops_per_token=2 * head_params + sum(i.flops for i in infos),
        depth=len(block_nodes), causal=task.causal, state_size=sum(i.state for i in infos),
        blocks=len(block_nodes), dim=dim, ops=arch.ops(),
    )
    if not build:
        return report, None
    model = M.Net(task.make_stem(dim), [i.module for i in infos], task.make_head(dim))
    return report, model


def check(arch: Arch | str, task: TaskShape) -> Report:
    """Type-check `arch` for `task` and count its parameters and FLOPs; raises ArchError."""
    return _walk(_as_arch(arch), task, build=False)[0]


def build(arch: Arch | str, task: TaskShape) -> nn.Module:
    """The whole model for `task` (stem, backbone, head); raises ArchError. Its size is counted first
    (no allocation), and a model over MAX_BUILD_PARAMS parameters is refused."""
    arch = _as_arch(arch)
    params = _walk(arch, task, build=False)[0].params
    if params > MAX_BUILD_PARAMS:
        raise ArchError(f"the model would have {params:,} parameters; build refuses more than {MAX_BUILD_PARAMS:,}")
    return _walk(arch, task, build=True)[1]
