"""The compact notation: a one-line, never-truncated rendering of an architecture for tables.

    net(64, repeat(2, block(pre:rms, attention(heads=4, kv_heads=4, rope=true)),
                      block(pre:rms, glu(expand=4, act=swish))))
    ->  64·2×[attn(h4,kv4,rope) | glu(e4,swish)]

It is for reading; the canonical string (`str(arch)`) stays the identity. The rendering is a pure
function of the derivation tree and is injective: two architectures with different canonical
strings render differently (so commutative reorderings, which share a graph hash, still render
differently, as their canonical strings do). It needs no registry: every hyperparameter is in the
tree, and an op's keys are fixed, so a boolean can be written as its key when true and left out
when false.

    net(D, s, ...)          D·s | s            stages separated by ' | '
    repeat(n, b, ...)       n×[b | b]
    block(pre:rms, x)       x                  other placements prefix it: ln:x  post:x  post-ln:x
                                               sandwich:x  mixln:x  nonorm:x
    name(k=v, ...)          name(kv,...)       heads=4 -> h4, rope=true -> rope, rope=false -> (left
                                               out), act=swish -> swish (a lone word), 'attention'
                                               shortened to 'attn' in names
    parallel(a, b)          (a ∥ b)            parallel(sum, a, b) -> (a + b)
    compose(m)              {m}
    seq(a, b)               a→b                a nested seq is parenthesised
    branch(add|mul|cat,a,b) (a + b) (a * b) (a ++ b)
    split(agg, a, b)        split+(a, b)  split*(a, b)  split++(a, b)
    attend(s, q, k, v)      attend.softmax(q, k, v)   attend.sigmoid(...)   attend(...) for none
    permute(m)              perm(m)
    linear(w) conv(k) shift(k) act(f) norm(n) id     lin4 conv3 shift1 gelu rms id
"""
from __future__ import annotations

from typing import Any

from einsearch.grammar.tree import Arch, ArchError, Node, format_value, format_width

# Hyperparameter key -> the letters written before its value. Keys not listed are written in full
# with '=' (still unambiguous). Within one op no two keys may share a short form (tested).
KEY_SHORT = {
    "heads": "h", "kv_heads": "kv", "expand": "e", "expansion": "e", "window": "w", "chunk": "c",
    "d_state": "n", "state_dim": "n", "filter_width": "fw", "kernel": "k", "experts": "E", "top_k": "top",
    "topk": "top", "latent_div": "ld", "block": "b", "buckets": "bk", "clusters": "cl", "shared": "sh",
    "lower_bound": "lb", "feature_dim": "fd", "regions": "r", "conv_ratio": "cr", "headdim": "hd",
}
AGG = {"add": "+", "mul": "*", "cat": "++"}
DEFAULT_BLOCK = ("pre", "rms")


def op_name(name: str) -> str:
    """A registered primitive's name, shortened: 'attention' -> 'attn' ('sliding_window' stays)."""
    return name.replace("attention", "attn")


def _hparams(hparams: tuple[tuple[str, Any], ...]) -> list[str]:
    words = [k for k, v in hparams if isinstance(v, str)]
    out = []
    for key, value in hparams:
        if isinstance(value, bool):
            if value:
                out.append(key)
        elif isinstance(value, str):
            out.append(value if len(words) == 1 else f"{key}={value}")
        elif key in KEY_SHORT:
            out.append(f"{KEY_SHORT[key]}{format_value(value)}")
        else:
            out.append(f"{key}={format_value(value)}")
    return out


def block_prefix(place: str, norm: str | None) -> str:
    """'' for the default pre:rms, else the placement and norm that differ ('ln:', 'post-ln:', 'nonorm:')."""
    if place == "none":
        return "nonorm:"
    if (place, norm) == DEFAULT_BLOCK:
        return ""
    parts = [p for p, default in ((place, "pre"), (norm, "rms")) if p != default]
    return "-".join(parts) + ":"


def _mod(node: Node, inside_seq: bool = False) -> str:
    kind, args, kids = node.kind, node.args, node.children
    if kind == "seq":
        text = "→".join(_mod(c, inside_seq=True) for c in kids)
        return f"({text})" if inside_seq else text
    if kind == "branch":
        return "(" + f" {AGG[args[0]]} ".join(_mod(c) for c in kids) + ")"
    if kind == "split":
        return f"split{AGG[args[0]]}(" + ", ".join(_mod(c) for c in kids) + ")"
    if kind == "attend":
        head = "attend" if args[0] == "none" else f"attend.{args[0]}"
        return f"{head}(" + ", ".join(_mod(c) for c in kids) + ")"
    if kind == "permute":
        return f"perm({_mod(kids[0])})"
    if kind == "linear":
        return f"lin{format_width(args[0])}"
    if kind in ("conv", "shift"):
        return f"{kind}{args[0]}"
    if kind in ("act", "fnorm"):
        return str(args[0])
    if kind == "identity":
        return "id"
    raise ArchError(f"compact: {kind!r} is not a fundamental operation")


def layer_text(node: Node) -> str:
    """A layer (primitive, parallel or compose) in compact notation."""
    kind, args, kids = node.kind, node.args, node.children
    if kind == "op":
        name, hparams = args
        inner = _hparams(hparams)
        return f"{op_name(name)}({','.join(inner)})" if inner else op_name(name)
    if kind == "parallel":
        sep = " + " if args and args[0] == "sum" else " ∥ "
        return "(" + sep.join(layer_text(c) for c in kids) + ")"
    if kind == "compose":
        return "{" + _mod(kids[0]) + "}"
    raise ArchError(f"compact: {kind!r} is not a layer")


def block_text(node: Node) -> str:
    """A block in compact notation: its placement prefix and its layer."""
    if node.kind != "block":
        raise ArchError(f"compact: expected a block, got {node.kind!r}")
    place, norm = node.args
    return block_prefix(place, norm) + layer_text(node.children[0])


def _stage(node: Node) -> str:
    if node.kind == "repeat":
        return f"{node.args[0]}×[" + " | ".join(block_text(b) for b in node.children) + "]"
    return block_text(node)


def compact(arch: Arch | Node) -> str:
    """The compact one-line notation of an architecture (see the module's docstring)."""
    root = arch.root if isinstance(arch, Arch) else arch
    if root.kind != "net":
        raise ArchError(f"compact: expected a net, got {root.kind!r}")
    return f"{root.args[0]}·" + " | ".join(_stage(s) for s in root.children)


def compact_text(text: str) -> str:
    """The compact notation of a canonical string; the string itself if this einsearch cannot parse it
    (a primitive from a plugin not loaded here, or an older grammar): never an error in a table."""
    from einsearch.grammar.parser import parse

    try:
        return compact(parse(text))
    except ArchError:
        return text
